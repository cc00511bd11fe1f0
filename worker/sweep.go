package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
)

// sweepArchived is the safety net for items whose tasks (item, map or
// reduce) were archived without the handler recording them: Asynq archives
// a task whose lease expired once its retries are used up (a worker killed
// while processing it, again and again) without calling any handler. Each such item is recorded as failed
// with a reason, so its batch still completes with every item in the
// manifest exactly once. Recording is idempotent, so every worker process
// may sweep.
func (w *Worker) sweepArchived(ctx context.Context, insp *asynq.Inspector) (int, error) {
	swept := 0
	for q := range w.cfg.Queues {
		for page := 1; ; page++ {
			tasks, err := insp.ListArchivedTasks(q, asynq.PageSize(200), asynq.Page(page))
			if err != nil {
				if errors.Is(err, asynq.ErrQueueNotFound) {
					break
				}
				return swept, fmt.Errorf("list archived tasks of %s: %w", q, err)
			}
			for _, t := range tasks {
				p, what, ok := w.sweptItem(ctx, t)
				if !ok {
					continue
				}
				done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item, p.Seq)
				if err != nil {
					return swept, err
				}
				if done {
					continue
				}
				reason := "its task was archived before it could be processed (archived by hand in the dashboard?)"
				if t.LastErr != "" {
					reason = "failed: " + t.LastErr
				}
				if strings.Contains(t.LastErr, asynq.ErrLeaseExpired.Error()) {
					reason = fmt.Sprintf("the worker processing it died %d times (task lease expired): the item may crash or exhaust a worker", t.Retried+1)
				}
				if what != "" && !strings.Contains(reason, what) {
					reason = what + ": " + reason
				}
				e := jobs.Entry{Item: p.Item, Seq: p.Seq, Source: p.Source.URL(), ETag: p.Source.ETag, Size: p.Source.Size, Kind: p.Kind,
					Type: p.Type, Status: jobs.StatusFailed, Error: reason, Attempts: t.Retried + 1,
					Key: p.Source.Key, ResultBase: p.ResultBase, Task: p.Task, Parent: p.Parent}
				recorded, complete, err := w.cfg.Tracker.Record(ctx, p.Batch, e)
				if err != nil {
					return swept, err
				}
				if recorded {
					w.cfg.Metrics.ItemEnded(p.Kind, e.Status, 0)
					swept++
					w.log.WarnContext(ctx, "archived item recorded as failed", "batch_id", p.Batch, "source", e.Source, "task_id", t.ID, "reason", reason)
				}
				if complete {
					if err := w.enqueueFinalize(ctx, p.Batch); err != nil {
						return swept, err
					}
				}
			}
			if len(tasks) < 200 {
				break
			}
		}
	}
	return swept, nil
}

// sweptItem returns the item an archived task belongs to — an item task,
// or a long document's map or reduce task — and which part of the item it
// was ("chunk 3 of 12 (pages 41–60)", "reduce", or "" for the item task).
func (w *Worker) sweptItem(ctx context.Context, t *asynq.TaskInfo) (p jobs.ItemPayload, what string, ok bool) {
	switch t.Type {
	case jobs.TypeItem:
		p, err := w.decodeItem(ctx, t.Payload)
		return p, "", err == nil
	case chunktask.TypeMap:
		mp, err := chunktask.DecodeMap(t.Payload)
		return mp.Item, mp.ChunkLabel(), err == nil
	case chunktask.TypeReduce:
		rp, err := chunktask.DecodeReduce(t.Payload)
		return rp.Item, "reduce", err == nil
	}
	return p, "", false
}

// sweepLoop runs sweepArchived every interval until ctx ends.
func (w *Worker) sweepLoop(ctx context.Context, interval time.Duration) {
	insp := asynq.NewInspector(w.cfg.Redis)
	defer insp.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := w.sweepArchived(ctx, insp); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "sweep of archived tasks failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
