package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func TestWebhookStateRoundTrip(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{ID: "b1", Created: time.Now(), Spec: jobs.Spec{Webhook: "https://example.test/hook"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := tr.WebhookState(ctx, "b1"); err != nil || ok {
		t.Fatalf("state before any attempt: ok=%v err=%v", ok, err)
	}
	for want := 1; want <= 3; want++ {
		n, err := tr.CountWebhookAttempt(ctx, "b1")
		if err != nil || n != want {
			t.Fatalf("attempt %d: got %d, %v", want, n, err)
		}
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := jobs.WebhookState{Status: jobs.WebhookFailed, Attempts: 3, LastStatus: 410, LastError: "gone", Updated: at, Delivery: "d"}
	if err := tr.SetWebhookState(ctx, "b1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := tr.WebhookState(ctx, "b1")
	if err != nil || !ok || got != want {
		t.Fatalf("state %+v ok=%v err=%v, want %+v", got, ok, err, want)
	}
	// The state lives beside the counters and does not disturb them.
	if c, err := tr.Counts(ctx, "b1"); err != nil || c.Done != 0 || c.Total != 0 {
		t.Fatalf("counts %+v %v", c, err)
	}
	// A webhook attempt that lands after the record is gone (expired, or
	// lost) writes nothing: no key without a TTL comes back.
	if err := rdb.Del(ctx, jobs.BatchKey("", "b1")).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.CountWebhookAttempt(ctx, "b1"); !errors.Is(err, jobs.ErrNoBatch) {
		t.Errorf("attempt on a gone batch: %v, want ErrNoBatch", err)
	}
	if err := tr.SetWebhookState(ctx, "b1", want); !errors.Is(err, jobs.ErrNoBatch) {
		t.Errorf("state of a gone batch: %v, want ErrNoBatch", err)
	}
	if n, err := rdb.Exists(ctx, jobs.BatchKey("", "b1")).Result(); err != nil || n != 0 {
		t.Errorf("the gone batch's record came back (%d, %v)", n, err)
	}
}
