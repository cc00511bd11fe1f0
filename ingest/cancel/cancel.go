// Package cancel cancels a batch on the queue side: the batch is marked
// cancelled (running items stop at their next step), its queued, scheduled
// and retrying tasks are removed and their items recorded as cancelled.
package cancel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
)

// taskItem returns the item a queued task works on: an item task, or a map
// or reduce task of a long document.
func taskItem(ti *asynq.TaskInfo, b jobs.Batch) (jobs.ItemPayload, bool) {
	switch ti.Type {
	case jobs.TypeItem:
		if id, err := itemtask.BatchOf(ti.Payload); err != nil || id != b.ID {
			return jobs.ItemPayload{}, false // another batch's: its record is not needed
		}
		p, err := itemtask.Decode(ti.Payload, func(string) (jobs.Batch, error) { return b, nil })
		return p, err == nil
	case chunktask.TypeMap:
		p, err := chunktask.DecodeMap(ti.Payload)
		return p.Item, err == nil
	case chunktask.TypeReduce:
		p, err := chunktask.DecodeReduce(ti.Payload)
		return p.Item, err == nil
	}
	return jobs.ItemPayload{}, false
}

// TaskInspector is what Batch asks of asynq's Inspector.
type TaskInspector interface {
	ListPendingTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListScheduledTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// Batch cancels a batch: it marks it cancelled (running items stop at
// their next step and end as cancelled), removes its queued, scheduled and
// retrying tasks and records their items as cancelled, and enqueues the
// finalize task when that ended the batch. It returns how many queued items
// it removed.
func Batch(ctx context.Context, t ingest.Records, insp TaskInspector, q ingest.Enqueuer, batch string, now time.Time) (int, error) {
	b, err := t.Get(ctx, batch)
	if err != nil {
		return 0, err
	}
	if _, err := t.Cancel(ctx, batch, now); err != nil {
		return 0, err
	}
	type lister func(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	removed, complete := 0, false
	for _, list := range []lister{insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks} {
		for page := 1; ; {
			tasks, err := list(b.Queue, asynq.PageSize(500), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return removed, fmt.Errorf("cancel %s: list tasks: %w", batch, err)
			}
			deleted := 0
			for _, ti := range tasks {
				p, ok := taskItem(ti, b)
				if !ok || p.Batch != batch {
					continue
				}
				if err := insp.DeleteTask(b.Queue, ti.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
					// A task that a worker took since it was listed is
					// running: it sees the cancel at its next step and
					// records itself; it is not ours to record.
					if now, gerr := insp.GetTaskInfo(b.Queue, ti.ID); gerr == nil && now.State == asynq.TaskStateActive {
						continue
					}
					return removed, fmt.Errorf("cancel %s: delete task %s: %w", batch, ti.ID, err)
				}
				deleted++
				e := jobs.Entry{Item: p.Item, Seq: p.Seq, Source: p.Source.URL(), ETag: p.Source.ETag, Size: p.Source.Size, Kind: p.Kind,
					Type: p.Type, Task: p.Task, ResultBase: p.ResultBase, Key: p.Source.Key, Status: jobs.StatusCancelled,
					Error: "cancelled: the batch was cancelled before this item ran", Attempts: ti.Retried}
				recorded, c, err := t.Record(ctx, batch, e)
				if err != nil {
					return removed, err
				}
				if recorded {
					removed++
				}
				complete = complete || c
			}
			if len(tasks) < 500 {
				break
			}
			if deleted == 0 { // deleting shifts later tasks onto this page
				page++
			}
		}
	}
	if complete {
		ft, err := jobs.NewFinalizeTask(batch, b.Queue)
		if err != nil {
			return removed, err
		}
		if _, err := q.EnqueueContext(ctx, ft); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return removed, fmt.Errorf("cancel %s: enqueue finalize: %w", batch, err)
		}
	}
	return removed, nil
}
