package cancel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/llamapipe/llamapipe/ingest/cancel"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// TestCancelRemovesQueuedMapTasks: cancelling a batch removes the queued map
// tasks of its long documents too, and records each such item once.
func TestCancelRemovesQueuedMapTasks(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tr := jobs.NewTracker(rdb, "")
	if err := tr.Create(ctx, jobs.Batch{ID: "bc", Spec: jobs.Spec{Queue: jobs.QueueDefault, Out: "/out"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Seal(ctx, "bc", 2); err != nil {
		t.Fatal(err)
	}
	long, short := cancelItem("bc", "long.pdf"), cancelItem("bc", "short.txt")
	for i := 1; i <= 3; i++ {
		task, err := chunktask.NewMapTask(chunktask.MapPayload{Item: long, Index: i, Count: 3, Pages: &jobs.PageRange{First: i, Last: i}}, jobs.QueueDefault, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	task, err := jobs.NewItemTask(short, jobs.QueueDefault, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	removed, err := cancel.Batch(ctx, tr, insp, client, "bc", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if removed != 2 {
		t.Errorf("removed %d items, want 2 (the long document once, the short one)", removed)
	}
	if pending, _ := insp.ListPendingTasks(jobs.QueueDefault); len(pending) != 1 || pending[0].Type != jobs.TypeFinalize {
		t.Errorf("%d tasks left, want only the finalize task", len(pending))
	}
	c, err := tr.Counts(ctx, "bc")
	if err != nil || c.Cancelled != 2 {
		t.Errorf("counts %+v (%v), want 2 cancelled", c, err)
	}
}

func cancelItem(batch, key string) jobs.ItemPayload {
	return jobs.ItemPayload{Batch: batch, Item: jobs.ItemID("/src", key), Source: jobs.Ref{Location: "/src", Key: key, ETag: "e1", Size: 10},
		Type: jobs.FileTXT, Kind: jobs.KindDocument, Task: jobs.TaskSummarize, Out: "/out", ResultBase: key}
}

// takenInspector is asynq's Inspector, except that the task taken has been
// taken by a worker between the listing and its delete: asynq refuses
// to delete it (FAILED_PRECONDITION) and reports it active — or, with
// state set otherwise, in that state.
type takenInspector struct {
	*asynq.Inspector
	taken string
	state asynq.TaskState
}

func (i takenInspector) DeleteTask(queue, id string) error {
	if id == i.taken {
		return errors.New("asynq: FAILED_PRECONDITION: cannot delete task in active state. use CancelProcessing instead.")
	}
	return i.Inspector.DeleteTask(queue, id)
}

func (i takenInspector) GetTaskInfo(queue, id string) (*asynq.TaskInfo, error) {
	ti, err := i.Inspector.GetTaskInfo(queue, id)
	if err == nil && id == i.taken {
		ti.State = i.state
	}
	return ti, err
}

// TestCancelLeavesATaskThatJustStartedToItsWorker: a queued task that a
// worker takes while the batch is being cancelled is not an error of the
// cancel and is not recorded by it (its worker sees the cancel and records
// it); a delete that fails for another reason is still an error.
func TestCancelLeavesATaskThatJustStartedToItsWorker(t *testing.T) {
	for _, tc := range []struct {
		state   asynq.TaskState
		wantErr bool
	}{{asynq.TaskStateActive, false}, {asynq.TaskStatePending, true}} {
		t.Run(tc.state.String(), func(t *testing.T) {
			url, rdb := jobstest.Redis(t, jobstest.DBIngest)
			ctx := context.Background()
			client := asynq.NewClient(jobstest.ConnOpt(t, url))
			defer client.Close()
			insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
			defer insp.Close()
			tr := jobs.NewTracker(rdb, "")
			if err := tr.Create(ctx, jobs.Batch{ID: "bt", Spec: jobs.Spec{Queue: jobs.QueueDefault, Out: "/out"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Seal(ctx, "bt", 2); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, key := range []string{"a.txt", "b.txt"} {
				task, err := jobs.NewItemTask(cancelItem("bt", key), jobs.QueueDefault, 3)
				if err != nil {
					t.Fatal(err)
				}
				ti, err := client.Enqueue(task)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ti.ID)
			}
			removed, err := cancel.Batch(ctx, tr, takenInspector{insp, ids[0], tc.state}, client, "bt", time.Now())
			if tc.wantErr {
				if err == nil {
					t.Fatal("a delete refused for a task that is not running was not an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("cancel while a task started: %v", err)
			}
			c, _ := tr.Counts(ctx, "bt")
			if removed != 1 || c.Cancelled != 1 {
				t.Errorf("removed %d, %d cancelled: want the queued one only (the started one is its worker's to record)", removed, c.Cancelled)
			}
		})
	}
}
