package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/mailparts"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/feedfetch"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
	"github.com/llamapipe/llamapipe/worker/metrics"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// outcome is what processing one item (or one of its tasks) produced.
type outcome = stage.Outcome

// itemHandler wraps handleItem: panics become errors, and the item's final
// state is recorded exactly once — on success, on a permanent failure, or
// when the last retry fails.
func (w *Worker) itemHandler() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		p, err := w.decodeItem(ctx, t.Payload())
		if errors.Is(err, jobs.ErrNoBatch) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry) // the batch expired: nothing to record it in
		}
		if err != nil && !errors.Is(err, jobs.ErrBadPayload) {
			return err // Redis unreachable: retried
		}
		if err != nil {
			// Without a decodable payload there is no item to record.
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		taskID, _ := asynq.GetTaskID(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		ctx, span := tracing.Start(tracing.Extract(ctx, p.Trace), tracing.SpanTask, trace.WithAttributes(attribute.String("llamapipe.batch", p.Batch),
			attribute.String("llamapipe.item", p.Item), attribute.String("llamapipe.task", p.Task), attribute.Int("llamapipe.retries", retry)))
		defer span.End()
		log := w.log.With("batch_id", p.Batch, "source", p.Source.URL(), "task_id", taskID)
		if done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item, p.Seq); err != nil {
			return err
		} else if done {
			log.InfoContext(ctx, "item already recorded: duplicate delivery ignored")
			return w.finalizeIfComplete(ctx, p.Batch)
		}
		start := w.now()
		var out outcome
		err = func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("internal error (panic: %v); please report it", r)
					log.ErrorContext(ctx, "panic while processing item", "panic", fmt.Sprint(r))
				}
			}()
			if msg, ferr := w.cfg.Tracker.Fatal(ctx, p.Batch); ferr != nil {
				return ferr
			} else if msg != "" {
				return permanent(msg, nil)
			}
			if err := w.checkCancelled(ctx, p); err != nil {
				return err
			}
			out, err = w.process(ctx, log, p, start)
			return err
		}()
		return spanEnd(span, w.finish(ctx, log, p, out, start, err))
	})
}

// finish records the item when its fate is final and returns what asynq
// should see. It serves item, map and reduce tasks alike: an outcome that is
// continued elsewhere (a long document handed to its map tasks, a chunk
// mapped) is not final and records nothing; any final failure of any of an
// item's tasks records the item, once.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, out outcome, start time.Time, err error) error {
	if err == nil && out.Continued {
		return nil
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	e := jobs.Entry{Item: p.Item, Seq: p.Seq, Source: p.Source.URL(), ETag: p.Source.ETag, Size: p.Source.Size, Kind: p.Kind, Type: p.Type,
		ResultBase: p.ResultBase, Task: p.Task, Key: p.Source.Key, Parent: p.Parent,
		Attempts: retried + 1, DurationMS: w.now().Sub(start).Milliseconds(), Results: out.Results,
		InputTokens: out.InputTokens, OutputTokens: out.OutputTokens, Cost: out.Cost, Currency: out.Currency,
		Model: out.Model, Provider: out.Provider, Pages: out.Pages, Chunks: out.Chunks}
	var returnErr error
	switch err = classify(err); {
	case errors.Is(err, errCancelled):
		e.Status, e.Error = jobs.StatusCancelled, "cancelled: the batch was cancelled before this item finished"
	case err == nil && out.Skipped != "":
		e.Status, e.Error = jobs.StatusSkipped, out.Skipped
	case err == nil:
		e.Status = jobs.StatusDone
	default:
		var fe *FatalError
		var pe *PermanentError
		switch {
		case errors.As(err, &fe):
			msg := fe.Error()
			first, serr := w.cfg.Tracker.SetFatal(ctx, p.Batch, msg)
			if serr != nil {
				return errors.Join(err, serr)
			}
			if first {
				log.WarnContext(ctx, "batch stopped", "reason", msg)
			}
			e.Status, e.Error = jobs.StatusFailed, msg
			returnErr = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		case errors.As(err, &pe):
			e.Status, e.Error = jobs.StatusFailed, pe.Error()
			log.InfoContext(ctx, "item failed", "reason", pe.Error())
			returnErr = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		case retried >= maxRetry && isFailure(err):
			e.Status, e.Error = jobs.StatusFailed, fmt.Sprintf("failed after %d attempts: %v", retried+1, err)
			log.InfoContext(ctx, "item failed: retries exhausted", "error", err.Error())
			returnErr = err
		case errors.Is(err, errDeferred):
			log.DebugContext(ctx, "waiting for the provider's batch job")
			return err // not final and not a failure: woken when the answer is in
		case errors.As(err, new(*PausedError)) || errors.Is(err, ratelimit.ErrDeferred):
			// A tenant out of budget, or over its fair share: routine under
			// load, so not worth an info line per item.
			log.DebugContext(ctx, "item held back", "reason", err.Error())
			return err
		default:
			log.InfoContext(ctx, "item attempt failed; will retry", "attempt", retried+1, "error", err.Error())
			w.cfg.Metrics.Retry(metrics.ErrorClass(err))
			return err // not final: asynq retries it
		}
	}
	recorded, complete, rerr := w.cfg.Tracker.Record(ctx, p.Batch, e)
	if recorded {
		w.itemRecorded(ctx, p, e, start)
		w.dropKept(ctx, log, p, out)
		if retried > 0 && trace.SpanFromContext(ctx).IsRecording() { // failed sends kept for the traces (traced)
			_ = w.cfg.Tracker.DropKeptAnswers(ctx, p.Batch, p.Item)
		}
		w.askFeed(ctx, p.Batch)
		w.spill(ctx, p.Batch)
	}
	if rerr != nil {
		// Not recorded: let asynq retry the whole item — also after a
		// permanent failure, whose SkipRetry is dropped here — so that the
		// next attempt records it (results are deterministic, so redoing it
		// overwrites, never duplicates).
		w.cfg.Metrics.Retry(metrics.ErrorClass(rerr))
		return fmt.Errorf("record %s (%s): %w", e.Source, e.Status, rerr)
	}
	if e.Status == jobs.StatusDone {
		log.InfoContext(ctx, "item done", "duration_ms", e.DurationMS, "input_tokens", e.InputTokens, "output_tokens", e.OutputTokens)
	}
	if complete {
		if ferr := w.enqueueFinalize(ctx, p.Batch); ferr != nil {
			return errors.Join(returnErr, ferr)
		}
	}
	return returnErr
}

func (w *Worker) finalizeIfComplete(ctx context.Context, batch string) error {
	c, err := w.cfg.Tracker.Counts(ctx, batch)
	if err != nil {
		return err
	}
	if c.Complete() && !c.Finalized {
		return w.enqueueFinalize(ctx, batch)
	}
	return nil
}

func (w *Worker) enqueueFinalize(ctx context.Context, batch string) error {
	b, err := w.cfg.Tracker.Get(ctx, batch)
	if err != nil {
		return err
	}
	// The finalize span links to the span of the task that completed the
	// batch: a span of the batch's ingest trace (none for a sweep).
	t, err := jobs.NewLinkedFinalizeTask(batch, b.Queue, tracing.Inject(ctx))
	if err != nil {
		return err
	}
	if _, err := w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue finalize of %s: %w", batch, err)
	}
	return nil
}

// errCancelled ends an item of a cancelled batch.
var errCancelled = errors.New("batch cancelled")

// checkCancelled returns errCancelled when the item's batch was cancelled.
// Long items call it between steps, so they stop at their next step.
func (w *Worker) checkCancelled(ctx context.Context, p jobs.ItemPayload) error {
	c, err := w.cfg.Tracker.Cancelled(ctx, p.Batch)
	if err != nil {
		return err
	}
	if c {
		return errCancelled
	}
	return nil
}

// progress records an item's stage for the dashboard, best effort.
func (w *Worker) progress(ctx context.Context, p jobs.ItemPayload, stage string, done, total int) {
	err := w.cfg.Tracker.SetProgress(ctx, p.Batch, jobs.Progress{Item: p.Item, Source: p.Source.URL(), Stage: stage,
		Done: done, Total: total, Updated: w.now().UTC()})
	if err != nil {
		w.log.DebugContext(ctx, "progress not recorded", "batch_id", p.Batch, "error", err.Error())
	}
}

// process does the item's work and writes its results.
func (w *Worker) process(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, start time.Time) (outcome, error) {
	model, err := w.admitTenant(ctx, p)
	if err != nil {
		return outcome{}, err
	}
	var src storage.Store
	if p.Source.Fetch == "" { // a feed row's image is fetched from its URL
		if src, err = w.stores.get(ctx, p.Source.Location); err != nil {
			return outcome{}, err
		}
	}
	out, err := w.stores.get(ctx, p.Out)
	if err != nil {
		return outcome{}, err
	}
	var data []byte
	if p.Source.Fetch != "" {
		var skip outcome
		if data, skip, err = w.fetchFeed(ctx, out, &p); err != nil || skip.Skipped != "" {
			return skip, err
		}
	} else if data, err = w.read(ctx, src, p.Source); err != nil {
		return outcome{}, err
	}
	var o outcome
	switch p.Task {
	case jobs.TaskCaption:
		o, err = w.caption.Caption(ctx, w.captionItem(ctx, log, p, out, model), data)
	case jobs.TaskSummarize:
		var maps []chunktask.MapPayload
		o, maps, err = w.document.Summarize(ctx, w.documentItem(ctx, log, p, out, model), data, start)
		if err == nil && o.Continued {
			err = w.enqueueMaps(ctx, log, p, maps)
		}
	default:
		return o, permanent(fmt.Sprintf("unknown task %q", p.Task), nil)
	}
	if err != nil || o.Skipped != "" || o.Continued {
		return o, err
	}
	return o, w.writeMarker(ctx, out, p)
}

// writeMarker leaves the marker that lets the next run skip this item
// while it is unchanged (nothing when the item has no fingerprint). It only
// saves work, so it is not made durable (stage.PutVolatile): a power loss
// may take it, and the next run then does the item again. Written after
// the results are durable, it never names results a power loss took.
func (w *Worker) writeMarker(ctx context.Context, out storage.Store, p jobs.ItemPayload) error {
	if p.Fingerprint == "" {
		return nil
	}
	mk := fingerprint.Key(p.ResultBase, p.Task, p.Fingerprint)
	return stage.PutVolatile(ctx, out, mk, nil, "application/octet-stream")
}

// keeper keeps item p's model answers in Redis (out's work area when Redis
// refuses one, or it is too large) until its results are stored. A task's first attempt
// (asynq's retry count 0; a task recovered from a dead worker counts as
// retried) finds nothing kept without looking.
func (w *Worker) keeper(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, out storage.Store) stage.Keeper {
	retried, _ := asynq.GetRetryCount(ctx)
	return stage.Keeper{Out: out, Stash: w.cfg.Tracker, Batch: p.Batch, Item: p.Item, Log: log, Fresh: retried == 0}
}

// keeperFor is keeper with Stored set: a retry that finds no kept answer
// (a power loss took it) takes the answer from the result an earlier
// attempt stored, if any, instead of asking model again.
func (w *Worker) keeperFor(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, out storage.Store, model llm.Client) stage.Keeper {
	k := w.keeper(ctx, log, p, out)
	prof := model.Profile()
	key := jobs.ResultKeys(p.ResultBase, p.Task)[0]
	k.Stored = func(ctx context.Context, name string) (stage.Kept, bool, error) {
		kept, ok, err := stage.StoredAnswer(ctx, out, key, p, prof.Prices, prof.Provider)
		if ok {
			log.InfoContext(ctx, "no kept answer, but an earlier attempt stored the result: using its answer, not asking the model again", "answer", name)
		}
		return kept, ok, err
	}
	return k
}

// dropKept deletes the answers item p kept (o.Kept) once the item is
// recorded: their Redis copy, and their work-area files only when one may
// have been written (o.KeptInWorkArea); best effort (the Redis copy
// expires by itself).
func (w *Worker) dropKept(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, o outcome) {
	if len(o.Kept) == 0 {
		return
	}
	out, err := w.stores.get(ctx, p.Out)
	if err == nil {
		var files []string
		if o.KeptInWorkArea {
			files = o.Kept
		}
		err = w.keeper(ctx, log, p, out).Drop(ctx, files...)
	}
	if err != nil {
		log.WarnContext(ctx, "kept answers not removed", "error", err.Error())
	}
}

// read fetches the source object, refusing one that changed since ingest
// (its ETag differs) or grew past the size limit.
// An email attachment (ref.Part) is read from its message.
func (w *Worker) read(ctx context.Context, st storage.Store, ref jobs.Ref) ([]byte, error) {
	ctx, span := tracing.Start(ctx, tracing.SpanFetch, trace.WithAttributes(attribute.String("llamapipe.source", ref.URL())))
	defer span.End()
	if ref.Fetch != "" {
		res, err := w.feed.Get(ctx, ref.Fetch)
		var fe *feedfetch.Error
		if errors.As(err, &fe) && fe.Permanent {
			return nil, stage.Permanent(err.Error(), err)
		}
		return res.Data, err
	}
	data, err := stage.Read(ctx, st, ref, w.cfg.MaxInputBytes)
	span.SetAttributes(attribute.Int("llamapipe.bytes", len(data)))
	if err != nil || ref.Part == "" {
		return data, err
	}
	part, err := mailparts.Open(data, ref.Part, mailparts.Limits{MaxPartBytes: w.cfg.MaxInputBytes})
	if err != nil {
		return nil, stage.Permanent(fmt.Sprintf("attachment %s of %s: %v", ref.Part, ref.Key, err), err)
	}
	return part, nil
}

// fetchFeed fetches a feed row's image. Its ETag (else Last-Modified)
// goes into the item's fingerprint (p.Fingerprint is replaced, so the
// marker written after the result carries it): when the output already
// has that marker, the URL is unchanged since the last run and the item is
// skipped with its results kept, before any model call.
func (w *Worker) fetchFeed(ctx context.Context, out storage.Store, p *jobs.ItemPayload) ([]byte, outcome, error) {
	res, err := w.feed.Get(ctx, p.Source.Fetch)
	if err != nil {
		var fe *feedfetch.Error
		if errors.As(err, &fe) && fe.Permanent {
			return nil, outcome{}, stage.Permanent(err.Error(), err)
		}
		return nil, outcome{}, err
	}
	v := res.ETag
	if v == "" {
		v = res.LastModified
	}
	if v == "" || p.Fingerprint == "" {
		return res.Data, outcome{}, nil
	}
	p.Fingerprint = fingerprint.Of("url:"+v, p.Task, p.Fingerprint, "", jobs.Options{})
	if _, err := out.Stat(ctx, fingerprint.Key(p.ResultBase, p.Task, p.Fingerprint)); err == nil {
		return nil, outcome{Skipped: "unchanged since the last run (same ETag or Last-Modified, prompts, model and options): results kept",
			Results: jobs.ResultKeys(p.ResultBase, p.Task)}, nil
	}
	return res.Data, outcome{}, nil
}

// reread fetches an item's source again.
func (w *Worker) reread(ctx context.Context, p jobs.ItemPayload) ([]byte, error) {
	if p.Source.Fetch != "" {
		return w.read(ctx, nil, p.Source)
	}
	src, err := w.stores.get(ctx, p.Source.Location)
	if err != nil {
		return nil, err
	}
	return w.read(ctx, src, p.Source)
}
