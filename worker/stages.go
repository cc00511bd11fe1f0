package worker

import (
	"context"
	"log/slog"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// The worker composes its stages (worker/document, worker/caption): it
// hands each the item, its output store and the model explicitly, per item,
// and the stages never call back into the worker.

// itemReport is item p's batch record as the document stage sees it.
type itemReport struct {
	w *Worker
	p jobs.ItemPayload
}

func (r itemReport) Progress(ctx context.Context, stage string, done, total int) {
	r.w.progress(ctx, r.p, stage, done, total)
}

func (r itemReport) Stopped(ctx context.Context) error { return r.w.checkCancelled(ctx, r.p) }

var (
	_ document.Model    = llm.Client(nil)
	_ caption.Model     = llm.Client(nil)
	_ document.Reporter = itemReport{}
	_ caption.Cache     = (*jobs.Tracker)(nil)
)

// documentItem is item p's work for the document stage, with the task's
// model client (modelFor: online, or through the provider's batch API when
// p's batch asks for that).
func (w *Worker) documentItem(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, out storage.Store, model llm.Client) document.Item {
	return document.Item{Payload: p, Out: out, Model: model, Log: log, Report: itemReport{w, p},
		ReadSource: func(ctx context.Context) ([]byte, error) { return w.reread(ctx, p) }, Keep: w.keeperFor(ctx, log, p, out, model)}
}

// captionItem is item p's work for the image stage, with the task's model
// client (see documentItem).
func (w *Worker) captionItem(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, out storage.Store, model llm.Client) caption.Item {
	return caption.Item{Payload: p, Out: out, Model: model, Log: log,
		ReadSource: func(ctx context.Context) ([]byte, error) { return w.reread(ctx, p) }, Keep: w.keeperFor(ctx, log, p, out, model)}
}

// TextBudget is how many tokens of document text one request to a model
// with this profile may carry (see document.TextBudget).
func TextBudget(prof llm.Profile, maxOut int) int { return document.TextBudget(prof, maxOut) }
