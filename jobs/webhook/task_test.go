package webhook_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

func TestWebhookTaskAndEvent(t *testing.T) {
	task, err := webhook.NewTask("b1")
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != webhook.TypeTask {
		t.Fatalf("type %q", task.Type())
	}
	p, err := webhook.Decode(task.Payload())
	if err != nil || p.Batch != "b1" || p.V != jobs.PayloadVersion {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	var keys map[string]any
	if err := json.Unmarshal(task.Payload(), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("payload %s: want only v and batch", task.Payload())
	}
	for _, bad := range []string{`{`, `{"v":1}`, `{"v":99,"batch":"b"}`} {
		if _, err := webhook.Decode([]byte(bad)); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("%s: got %v, want ErrBadPayload", bad, err)
		}
	}

	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := jobs.Batch{ID: "b1", Created: created, Spec: jobs.Spec{Out: "s3://bucket/out/", Tenant: "acme", Webhook: "https://example.test/hook"}}
	c := jobs.Counts{Total: 5, Done: 3, Failed: 1, Skipped: 1, InputTokens: 100, OutputTokens: 20, Finished: created.Add(time.Hour)}
	ev := webhook.NewEvent(b, c)
	if ev.Manifest != "s3://bucket/out/batches/b1/manifest.jsonl" || ev.Report != "s3://bucket/out/batches/b1/report.md" {
		t.Errorf("locations %q %q", ev.Manifest, ev.Report)
	}
	if ev.State != "finished" || ev.Counts.Done != 3 || ev.Counts.Failed != 1 || ev.Tenant != "acme" || ev.Delivery != webhook.DeliveryID("b1", webhook.EventBatchCompleted) {
		t.Errorf("event %+v", ev)
	}
	c.CancelRequested = true
	if ev := webhook.NewEvent(b, c); ev.State != "cancelled" {
		t.Errorf("cancelled batch: state %q", ev.State)
	}
	c.Fatal = "the provider refused the API key"
	if ev := webhook.NewEvent(b, c); ev.State != "stopped" || ev.Fatal != c.Fatal {
		t.Errorf("stopped batch: %+v", ev)
	}
}
