package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func TestWebhookTaskAndEvent(t *testing.T) {
	task, err := jobs.NewWebhookTask("b1")
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != jobs.TypeWebhook {
		t.Fatalf("type %q", task.Type())
	}
	p, err := jobs.DecodeWebhook(task.Payload())
	if err != nil || p.Batch != "b1" || p.V != jobs.PayloadVersion {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	var keys map[string]any
	if err := json.Unmarshal(task.Payload(), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("payload %s: want only v and batch", task.Payload())
	}
	for _, bad := range []string{`{`, `{"v":1}`, `{"v":99,"batch":"b"}`} {
		if _, err := jobs.DecodeWebhook([]byte(bad)); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("%s: got %v, want ErrBadPayload", bad, err)
		}
	}

	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := jobs.Batch{ID: "b1", Created: created, Spec: jobs.Spec{Out: "s3://bucket/out/", Tenant: "acme", Webhook: "https://example.test/hook"}}
	c := jobs.Counts{Total: 5, Done: 3, Failed: 1, Skipped: 1, InputTokens: 100, OutputTokens: 20, Finished: created.Add(time.Hour)}
	ev := jobs.NewWebhookEvent(b, c)
	if ev.Manifest != "s3://bucket/out/batches/b1/manifest.jsonl" || ev.Report != "s3://bucket/out/batches/b1/report.md" {
		t.Errorf("locations %q %q", ev.Manifest, ev.Report)
	}
	if ev.State != "finished" || ev.Counts.Done != 3 || ev.Counts.Failed != 1 || ev.Tenant != "acme" || ev.Delivery != jobs.WebhookDeliveryID("b1", jobs.EventBatchCompleted) {
		t.Errorf("event %+v", ev)
	}
	c.CancelRequested = true
	if ev := jobs.NewWebhookEvent(b, c); ev.State != "cancelled" {
		t.Errorf("cancelled batch: state %q", ev.State)
	}
	c.Fatal = "the provider refused the API key"
	if ev := jobs.NewWebhookEvent(b, c); ev.State != "stopped" || ev.Fatal != c.Fatal {
		t.Errorf("stopped batch: %+v", ev)
	}
}

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
