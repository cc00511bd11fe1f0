package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/llamapipe/llamapipe/ingest"
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
	removed, err := ingest.Cancel(ctx, tr, insp, client, "bc", time.Now())
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
