package worker

import (
	"context"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Records is what the worker keeps of batches (a *jobs.Tracker): an
// item's life (is it recorded, cancelled, stopped; its progress and its
// entry), a long document's mapped parts, and what it hands its stages —
// the caption cache, the cancel check of batch mode, and the records
// finalize reads and marks.
type Records interface {
	// An item's life.
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	Recorded(ctx context.Context, batch, item string, seq int64) (bool, error)
	Record(ctx context.Context, batch string, e jobs.Entry) (recorded, complete bool, err error)
	Cancelled(ctx context.Context, batch string) (bool, error)
	Fatal(ctx context.Context, batch string) (string, error)
	SetFatal(ctx context.Context, batch, msg string) (first bool, err error)
	SetWarning(ctx context.Context, batch, msg string) error
	SetProgress(ctx context.Context, batch string, p jobs.Progress) error
	SetProgressUnlessRecorded(ctx context.Context, batch string, seq int64, p jobs.Progress) error

	// A long document's parts (map/reduce).
	Mapped(ctx context.Context, batch, item string) (int, error)
	MarkMapped(ctx context.Context, batch, item string, index int) (int, error)
	ClearMapped(ctx context.Context, batch, item string) error

	// Finalize: the manifest and the completion webhook.
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
	Expire(ctx context.Context, b jobs.Batch, retention time.Duration, now time.Time) error
	MarkFinalized(ctx context.Context, batch string, at time.Time) error
	WebhookState(ctx context.Context, batch string) (jobs.WebhookState, bool, error)
	SetWebhookState(ctx context.Context, batch string, st jobs.WebhookState) error
	CountWebhookAttempt(ctx context.Context, batch string) (int, error)

	// The caption stage's content cache.
	caption.Cache

	// Model answers kept in Redis until their result is stored (and map
	// answers the output store's work area cannot hold).
	stage.Stash
}

var _ Records = (*jobs.Tracker)(nil)
