package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// cancelAfter cancels a context once n tasks were enqueued through it.
type cancelAfter struct {
	q      ingest.Enqueuer
	n      atomic.Int64
	after  int64
	cancel context.CancelFunc
}

func (c *cancelAfter) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if c.n.Add(1) == c.after {
		c.cancel()
	}
	return c.q.EnqueueContext(ctx, t, opts...)
}

// A listing stopped part-way ends its batch sealed with the items handed
// over and cancelled (ErrStopped), never "listing"; an ingest task
// (Resume) leaves it to its retry.
func TestRunStoppedPartWayEndsCancelled(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	src := t.TempDir()
	for i := range 300 {
		write(t, src, fmt.Sprintf("f%03d.txt", i), []byte(fmt.Sprintf("Contract %d.", i)))
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	t.Cleanup(func() { _ = client.Close() })
	tr := jobs.NewTracker(rdb, "")
	for _, resume := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		q := &cancelAfter{q: client, after: 50, cancel: cancel}
		in := &ingest.Ingester{Open: open, Queue: q, Tracker: tr}
		id := fmt.Sprintf("stopped-%v", resume)
		_, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: filepath.Join(t.TempDir(), "out"), Task: jobs.TaskSummarize}, Concurrency: 2, BatchID: id, Resume: resume})
		cancel()
		if err == nil {
			t.Fatalf("resume %v: Run ended without an error after its context was cancelled", resume)
		}
		c, cerr := tr.Counts(context.Background(), id)
		if cerr != nil {
			t.Fatal(cerr)
		}
		if resume {
			if errors.Is(err, ingest.ErrStopped) || c.Sealed || c.CancelRequested {
				t.Fatalf("resumable run: %v, counts %+v; want the batch left to the task's retry", err, c)
			}
			continue
		}
		if !errors.Is(err, ingest.ErrStopped) {
			t.Fatalf("Run = %v, want ErrStopped", err)
		}
		if !c.Sealed || !c.CancelRequested || c.Total < 49 || c.Total >= 300 || c.State() == "listing" {
			t.Fatalf("counts %+v (%s): want sealed part-way and cancelled", c, c.State())
		}
	}
}
