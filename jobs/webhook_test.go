package jobs_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func signedHeader(secret []byte, at time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(jobs.HeaderWebhookSignature, jobs.SignWebhook(secret, at, body))
	return h
}

func TestWebhookSignatureVerifies(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"event":"batch.completed","batch":"b1"}`)
	at := time.Unix(1_700_000_000, 0)
	h := signedHeader(secret, at, body)

	// The scheme is the documented one, computed independently here.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(at.Unix(), 10) + "." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := h.Get(jobs.HeaderWebhookSignature); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if err := jobs.VerifyWebhook(secret, h, body, at.Add(time.Minute), 0); err != nil {
		t.Fatalf("valid call refused: %v", err)
	}

	rotated := http.Header{}
	rotated.Set(jobs.HeaderWebhookSignature, "t=1700000000,v1=00ff,v1="+strings.TrimPrefix(want, "t=1700000000,v1="))
	if err := jobs.VerifyWebhook(secret, rotated, body, at, 0); err != nil {
		t.Errorf("a second v1 value that matches is refused: %v", err)
	}

	tampered := []byte(strings.Replace(string(body), "b1", "b2", 1))
	cases := []struct {
		name   string
		secret []byte
		header http.Header
		body   []byte
		now    time.Time
		tol    time.Duration
	}{
		{"tampered body", secret, h, tampered, at, 0},
		{"other secret", []byte("other"), h, body, at, 0},
		{"too old", secret, h, body, at.Add(10 * time.Minute), 0},
		{"too old for a tight tolerance", secret, h, body, at.Add(2 * time.Second), time.Second},
		{"no header", secret, http.Header{}, body, at, 0},
		{"malformed", secret, http.Header{jobs.HeaderWebhookSignature: {"garbage"}}, body, at, 0},
		{"no v1", secret, http.Header{jobs.HeaderWebhookSignature: {"t=1700000000"}}, body, at, 0},
		{"no secret", nil, h, body, at, 0},
	}
	for _, c := range cases {
		if err := jobs.VerifyWebhook(c.secret, c.header, c.body, c.now, c.tol); !errors.Is(err, jobs.ErrWebhookSignature) {
			t.Errorf("%s: got %v, want ErrWebhookSignature", c.name, err)
		}
	}
	if err := jobs.VerifyWebhook(secret, h, body, at.Add(24*time.Hour), -1); err != nil {
		t.Errorf("negative tolerance should skip the time check: %v", err)
	}
}

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
}
