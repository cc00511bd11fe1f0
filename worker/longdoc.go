package worker

// A long document is summarized across workers in three tasks (see
// worker/document for what each does with the text):
//
//  1. its item task runs document.Summarize, which writes one chunk object
//     per chunk under the batch's work prefix and hands back their map
//     payloads; enqueueMaps enqueues one map task per chunk; nothing is
//     recorded;
//  2. each map task (mapHandler) runs document.Map, adds its index to the
//     item's set of mapped chunks in Redis, and the one that completes the
//     set enqueues the reduce (deterministic task ID);
//  3. the reduce task (reduceHandler) runs document.Reduce, writes the
//     fingerprint marker, records the item once with the tokens and cost of
//     every stage, and deletes the work objects.
//
// A map that fails for good records the item as failed, naming its chunk;
// the item's other map tasks then stop without calling the model.

import (
	"cmp"
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
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// enqueueMaps enqueues the map tasks of a document continued in map tasks
// (the chunk objects are written), on the item task's queue and with its
// retries.
func (w *Worker) enqueueMaps(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, chunks []chunktask.MapPayload) error {
	queue, _ := asynq.GetQueueName(ctx)
	queue = cmp.Or(queue, jobs.QueueDefault)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = 3
	}
	if err := w.checkCancelled(ctx, p); err != nil {
		return err
	}
	parent := tracing.Inject(ctx) // the item task's span: each map's parent
	for _, mp := range chunks {
		mp.Trace = parent
		t, err := chunktask.NewMapTask(mp, queue, maxRetry)
		if err != nil {
			return err
		}
		if _, err := w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue %s: %w", mp.ChunkLabel(), err)
		}
	}
	n := len(chunks)
	if n == 0 {
		return nil
	}
	mapped, err := w.cfg.Tracker.Mapped(ctx, p.Batch, p.Item)
	if err == nil {
		w.progress(ctx, p, "map", mapped, n)
	}
	log.InfoContext(ctx, "document continued in map tasks", "chunks", n, "pages", chunks[0].DocPages, "split", chunks[0].Chunk != "")
	return nil
}

// guard runs fn, turning a panic into an error (the task is then recorded
// and retried like any other failure; the process lives on).
func guard(ctx context.Context, log *slog.Logger, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (panic: %v); please report it", r)
			log.ErrorContext(ctx, "panic while processing item", "panic", fmt.Sprint(r))
		}
	}()
	return fn()
}

// stopped returns the batch's stop message as a permanent error, or
// errCancelled, or nil when the item may go on.
func (w *Worker) stopped(ctx context.Context, p jobs.ItemPayload) error {
	if msg, err := w.cfg.Tracker.Fatal(ctx, p.Batch); err != nil {
		return err
	} else if msg != "" {
		return permanent(msg, nil)
	}
	return w.checkCancelled(ctx, p)
}

// mapHandler runs one chunk's map task. Its success records nothing (the
// reduce records the item); a final failure records the item as failed,
// naming the chunk.
func (w *Worker) mapHandler() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		mp, err := chunktask.DecodeMap(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		p := mp.Item
		taskID, _ := asynq.GetTaskID(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		ctx, span := tracing.Start(tracing.Extract(ctx, cmp.Or(mp.Trace, p.Trace)), tracing.SpanMap, trace.WithAttributes(
			attribute.String("llamapipe.batch", p.Batch), attribute.String("llamapipe.item", p.Item),
			attribute.Int("llamapipe.chunk", mp.Index), attribute.Int("llamapipe.chunks", mp.Count), attribute.Int("llamapipe.retries", retry)))
		defer span.End()
		log := w.log.With("batch_id", p.Batch, "source", p.Source.URL(), "task_id", taskID, "chunk", mp.Index)
		if done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item, p.Seq); err != nil {
			return err
		} else if done {
			log.InfoContext(ctx, "item already recorded: map skipped")
			return w.finalizeIfComplete(ctx, p.Batch)
		}
		start := startTime(mp.StartedMS, w.now())
		model, err := w.admit(ctx, p)
		if err == nil {
			if err = guard(ctx, log, func() error { return w.mapChunk(ctx, log, mp, model) }); err != nil {
				err = chunkError(mp, err)
			}
		}
		o := outcome{Continued: true}
		if err != nil {
			o = outcome{Pages: mp.DocPages, Chunks: mp.Count}
		}
		return spanEnd(span, w.finish(ctx, log, p, o, start, err))
	})
}

// chunkError names the chunk in a map failure's reason ("chunk 3 of 12
// (pages 41–60): ...").
func chunkError(mp chunktask.MapPayload, err error) error {
	err = classify(err)
	var pe *PermanentError
	var fe *FatalError
	switch {
	case errors.Is(err, errCancelled), errors.As(err, &fe):
		return err
	case errors.As(err, &pe):
		return permanent(mp.ChunkLabel()+": "+pe.Error(), pe)
	}
	return fmt.Errorf("%s: %w", mp.ChunkLabel(), err)
}

func startTime(ms int64, now time.Time) time.Time {
	if ms <= 0 {
		return now
	}
	return time.UnixMilli(ms)
}

// mapChunk maps one chunk (document.Map: not again when its answer is
// already written), then counts it in; the map that completes the item's
// set enqueues the reduce.
func (w *Worker) mapChunk(ctx context.Context, log *slog.Logger, mp chunktask.MapPayload, model llm.Client) error {
	p := mp.Item
	out, err := w.stores.get(ctx, p.Out)
	if err != nil {
		return err
	}
	if err := w.document.Map(ctx, w.documentItem(ctx, log, p, out, model), mp); err != nil {
		return err
	}
	n, err := w.cfg.Tracker.MarkMapped(ctx, p.Batch, p.Item, mp.Index)
	if err != nil {
		return err
	}
	perr := w.cfg.Tracker.SetProgressUnlessRecorded(ctx, p.Batch, p.Seq, jobs.Progress{Item: p.Item, Source: p.Source.URL(), Stage: "map",
		Done: n, Total: mp.Count, Updated: w.now().UTC()})
	if perr != nil {
		log.DebugContext(ctx, "progress not recorded", "error", perr.Error())
	}
	if n < mp.Count {
		return nil
	}
	queue, _ := asynq.GetQueueName(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	t, err := chunktask.NewReduceTask(chunktask.ReducePayload{Item: p, Count: mp.Count, DocPages: mp.DocPages, StartedMS: mp.StartedMS, Trace: mp.Trace},
		cmp.Or(queue, jobs.QueueDefault), maxRetry)
	if err != nil {
		return err
	}
	if _, err := w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue reduce: %w", err)
	}
	log.InfoContext(ctx, "every chunk mapped: reduce enqueued", "chunks", mp.Count)
	return nil
}

// reduceHandler runs a document's reduce task: it records the item.
func (w *Worker) reduceHandler() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		rp, err := chunktask.DecodeReduce(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		p := rp.Item
		taskID, _ := asynq.GetTaskID(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		ctx, span := tracing.Start(tracing.Extract(ctx, cmp.Or(rp.Trace, p.Trace)), tracing.SpanReduce, trace.WithAttributes(
			attribute.String("llamapipe.batch", p.Batch), attribute.String("llamapipe.item", p.Item),
			attribute.Int("llamapipe.chunks", rp.Count), attribute.Int("llamapipe.retries", retry)))
		defer span.End()
		log := w.log.With("batch_id", p.Batch, "source", p.Source.URL(), "task_id", taskID)
		if done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item, p.Seq); err != nil {
			return err
		} else if done {
			log.InfoContext(ctx, "item already recorded: duplicate reduce ignored")
			return w.finalizeIfComplete(ctx, p.Batch)
		}
		start := startTime(rp.StartedMS, w.now())
		o := outcome{Pages: rp.DocPages, Chunks: rp.Count}
		err = guard(ctx, log, func() error {
			model, err := w.admit(ctx, p)
			if err != nil {
				return err
			}
			return w.reduceItem(ctx, log, rp, &o, model)
		})
		if ferr := w.finish(ctx, log, p, o, start, err); ferr != nil || err != nil {
			return spanEnd(span, ferr) // work objects are kept on failure, for inspection
		}
		w.removeWork(ctx, log, p)
		return nil
	})
}

// reduceItem reduces the map answers and writes the digest
// (document.Reduce) and the fingerprint marker; o sums what every stage
// cost.
func (w *Worker) reduceItem(ctx context.Context, log *slog.Logger, rp chunktask.ReducePayload, o *outcome, model llm.Client) error {
	p := rp.Item
	out, err := w.stores.get(ctx, p.Out)
	if err != nil {
		return err
	}
	if err := w.document.Reduce(ctx, w.documentItem(ctx, log, p, out, model), rp, o); err != nil {
		return err
	}
	return w.writeMarker(ctx, out, p)
}

// removeWork deletes an item's work objects (kept answers included, in the
// work area and in Redis) and its set of mapped chunks,
// best effort: the item is recorded already.
func (w *Worker) removeWork(ctx context.Context, log *slog.Logger, p jobs.ItemPayload) {
	out, err := w.stores.get(ctx, p.Out)
	if err == nil {
		err = document.RemoveWork(ctx, out, p)
	}
	err = errors.Join(err, w.cfg.Tracker.ClearMapped(ctx, p.Batch, p.Item), w.cfg.Tracker.DropKeptAnswers(ctx, p.Batch, p.Item))
	if err != nil {
		log.WarnContext(ctx, "work objects not removed", "prefix", workarea.WorkPrefix(p.Batch, p.Item), "error", err.Error())
	}
}
