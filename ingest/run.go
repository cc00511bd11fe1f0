package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/tracing"
)

// ErrStopped reports a listing that stopped part-way (its context ended,
// a source failed, Redis or the queue went away) after its batch was
// created: Run then sealed the batch with the items it had queued and
// cancelled it, so it ends cancelled instead of staying "listing".
var ErrStopped = errors.New("ingest: listing stopped part-way; the batch was cancelled")

// stopTimeout bounds the clean-up of a batch whose listing stopped.
const stopTimeout = 30 * time.Second

// Run lists the sources, creates the batch and enqueues its items. The batch
// exists (and is tracked) as soon as Run starts enqueueing; it is sealed with
// its total when listing ends, so workers can finish before listing does.
//
// A listing that stops part-way (ctx ends, a source or Redis fails) ends
// the batch it created as cancelled (see ErrStopped), except with
// o.Resume: a retried ingest task continues such a batch.
func (in *Ingester) Run(ctx context.Context, o Options) (Result, error) {
	now := in.now
	log := cmp.Or(in.Logger, slog.New(slog.DiscardHandler))
	ctx, span := tracing.Start(ctx, tracing.SpanIngest)
	defer span.End()
	pr, err := in.prepare(ctx, o)
	if err != nil {
		return Result{}, err
	}
	o = pr.o
	res := Result{BatchID: cmp.Or(o.BatchID, NewBatchID(now())), Kinds: map[string]int{}}
	b := jobs.Batch{ID: res.BatchID, Created: now().UTC(), Spec: o.Spec, RetryOf: o.RetryOf}
	b.Out = pr.out.String()
	if err := in.Tracker.Create(ctx, b); err != nil && !(o.Resume && errors.Is(err, jobs.ErrBatchExists)) {
		return res, err
	}
	log = log.With("batch_id", res.BatchID)
	log.InfoContext(ctx, "batch created", "sources", len(o.Sources), "task", o.Task, "out", b.Out)

	var mu sync.Mutex
	var total int
	if o.MaxQueued > 0 && in.Feeds != nil {
		total, err = in.listBounded(ctx, pr, b, &res)
	} else {
		total, err = in.scan(ctx, pr, func(it Item) error {
			enqueued, err := in.enqueue(ctx, b, o, it)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			res.Kinds[string(it.Kind)]++
			if enqueued {
				res.Enqueued++
			} else {
				res.Skipped++
			}
			return nil
		})
	}
	if err != nil {
		if o.Resume {
			return res, err
		}
		return res, in.stop(ctx, log, res, o.Queue, err)
	}
	res.Total = total
	complete, err := in.Tracker.Seal(ctx, res.BatchID, res.Total)
	if err != nil {
		return res, err
	}
	if complete {
		if err := in.enqueueFinalize(ctx, res.BatchID, o.Queue); err != nil {
			return res, err
		}
	}
	log.InfoContext(ctx, "batch sealed", "total", res.Total, "enqueued", res.Enqueued, "skipped", res.Skipped)
	return res, nil
}

// stop ends a batch whose listing stopped part-way with cause: it is
// marked cancelled (workers end its queued items as cancelled; the API also
// removes them from the queue), sealed with the items handed over so far,
// and finalized once they have ended. It runs on its own deadline, as ctx
// may be what ended.
func (in *Ingester) stop(ctx context.Context, log *slog.Logger, res Result, queue string, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	handed := res.Enqueued + res.Skipped
	log.WarnContext(ctx, "listing stopped part-way: cancelling the batch", "err", cause, "queued", res.Enqueued, "skipped", res.Skipped)
	if _, err := in.Tracker.Cancel(ctx, res.BatchID, in.now()); err != nil {
		return fmt.Errorf("%w (%w); cancel: %w", ErrStopped, cause, err)
	}
	complete, err := in.Tracker.Seal(ctx, res.BatchID, handed)
	if err != nil {
		return fmt.Errorf("%w (%w); seal: %w", ErrStopped, cause, err)
	}
	if complete {
		if err := in.enqueueFinalize(ctx, res.BatchID, queue); err != nil {
			return fmt.Errorf("%w (%w); %w", ErrStopped, cause, err)
		}
	}
	return fmt.Errorf("batch %s: %w: %w", res.BatchID, ErrStopped, cause)
}

func (in *Ingester) enqueueFinalize(ctx context.Context, batch, queue string) error {
	t, err := jobs.NewLinkedFinalizeTask(batch, queue, tracing.Inject(ctx))
	if err != nil {
		return err
	}
	if _, err := in.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue finalize of %s: %w", batch, err)
	}
	return nil
}

// enqueue records a skipped item in the batch, or enqueues its task. It
// reports whether a task was enqueued. An error means the batch itself is
// in trouble (Redis down), not the item.
func (in *Ingester) enqueue(ctx context.Context, b jobs.Batch, o Options, it Item) (bool, error) {
	if it.Skip == "" {
		t, err := itemtask.NewTask(b, in.payload(ctx, b, o, it), itemtask.Options{Queue: o.Queue, MaxRetry: o.MaxRetry})
		if err != nil {
			it.Skip = "cannot be queued: " + err.Error()
		} else {
			if _, err := in.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return false, fmt.Errorf("enqueue %s: %w", it.Ref.URL(), err)
			}
			return true, nil
		}
	}
	_, err := in.record(ctx, b, it)
	return false, err
}

// payload is item it's task payload; Trace carries the ingest's trace
// context across the queue ("" when tracing is off).
func (in *Ingester) payload(ctx context.Context, b jobs.Batch, o Options, it Item) jobs.ItemPayload {
	return jobs.ItemPayload{Batch: b.ID, Item: it.ID, Source: it.Ref, Type: it.Type, Kind: it.Kind, Task: it.Task,
		Out: b.Out, ResultBase: it.ResultBase, Options: o.Options, Fingerprint: it.Fingerprint,
		Parent: it.Parent, Trace: tracing.Inject(ctx), Seq: it.Seq}
}

// record records a skipped item in the batch, and reports whether this
// call recorded it (not an earlier one).
func (in *Ingester) record(ctx context.Context, b jobs.Batch, it Item) (bool, error) {
	recorded, _, err := in.Tracker.Record(ctx, b.ID, skipEntry(it))
	return recorded, err
}

// skipEntry is a skipped item's manifest entry.
func skipEntry(it Item) jobs.Entry {
	e := jobs.Entry{Item: it.ID, Seq: it.Seq, Source: it.Ref.URL(), ETag: it.Ref.ETag, Size: it.Ref.Size, Kind: it.Kind,
		Type: it.Type, Status: jobs.StatusSkipped, Error: it.Skip, ResultBase: it.ResultBase, Task: it.Task, Key: it.Ref.Key,
		Parent: it.Parent}
	if it.Failed {
		e.Status = jobs.StatusFailed
	}
	if it.Unchanged {
		e.Results = jobs.ResultKeys(it.ResultBase, it.Task)
	}
	return e
}
