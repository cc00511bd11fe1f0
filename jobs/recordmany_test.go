package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// RecordMany records each entry once, like Record, in one round trip.
func TestRecordMany(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "rm1", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	e := func(item string) jobs.Entry {
		return jobs.Entry{Item: item, Source: "/src/" + item, Status: jobs.StatusSkipped, Error: "unchanged"}
	}
	if _, _, err := tr.Record(ctx, b.ID, e("a")); err != nil {
		t.Fatal(err)
	}
	n, err := tr.RecordMany(ctx, b.ID, []jobs.Entry{e("a"), e("b"), e("c"), e("b")})
	if err != nil || n != 2 {
		t.Fatalf("RecordMany = %d, %v; want 2 (a was recorded, b twice)", n, err)
	}
	if n, err := tr.RecordMany(ctx, b.ID, nil); err != nil || n != 0 {
		t.Fatalf("RecordMany(nil) = %d, %v", n, err)
	}
	complete, err := tr.Seal(ctx, b.ID, 3)
	if err != nil || !complete {
		t.Fatalf("Seal = %v, %v; want complete", complete, err)
	}
	c, err := tr.Counts(ctx, b.ID)
	if err != nil || c.Skipped != 3 {
		t.Fatalf("counts %+v, %v", c, err)
	}
	if _, err := tr.RecordMany(ctx, "gone", []jobs.Entry{e("x")}); !errors.Is(err, jobs.ErrNoBatch) {
		t.Fatalf("unknown batch: %v, want ErrNoBatch", err)
	}
}
