package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/webhook"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// receiver is a webhook endpoint that verifies every call and answers with
// the next status of its script (the last one repeats).
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	script   []int
	calls    int
	bodies   [][]byte
	headers  []http.Header
	verified []error
}

func newReceiver(t *testing.T, secret []byte, script ...int) *receiver {
	r := &receiver{t: t, secret: secret, script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, body)
		r.headers = append(r.headers, req.Header.Clone())
		r.verified = append(r.verified, webhook.Verify(r.secret, req.Header, body, time.Now(), time.Minute))
		code := r.script[min(r.calls, len(r.script)-1)]
		r.calls++
		if code == http.StatusFound {
			http.Redirect(w, req, "/elsewhere", code)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) snapshot() (calls int, bodies [][]byte, headers []http.Header, verified []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, append([][]byte(nil), r.bodies...), append([]http.Header(nil), r.headers...), append([]error(nil), r.verified...)
}

// waitWebhook polls the batch's webhook state until it is no longer pending.
func (e *env) waitWebhook(batch string, timeout time.Duration) jobs.WebhookState {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, ok, err := e.tracker.WebhookState(context.Background(), batch)
		if err != nil {
			e.t.Fatal(err)
		}
		if ok && st.Status != jobs.WebhookPending {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("webhook of %s still pending after %s: %+v (recorded: %v)", batch, timeout, st, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pricedModel is the offline model with prices, so batches have a cost.
type pricedModel struct{ llm.Client }

func (p pricedModel) Profile() llm.Profile {
	prof := p.Client.Profile()
	prof.Prices = llm.Prices{Currency: "USD", InputPerMillion: 1000, OutputPerMillion: 1000}
	return prof
}

func TestWebhookDeliveredAfterARetryWithOneDeliveryID(t *testing.T) {
	e := newEnv(t)
	secret := []byte("webhook-secret-for-tests")
	rcv := newReceiver(t, secret, http.StatusInternalServerError, http.StatusOK)
	e.runWorker(worker.Config{Model: pricedModel{offline.New(offline.Options{})}, Concurrency: 2,
		WebhookSecret: secret, WebhookRetryDelay: 50 * time.Millisecond}, nil)
	src, outDir := textInputs(t, 3), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Webhook: rcv.srv.URL + "/hook", Tenant: "acme"}})
	out, _ := e.open(context.Background(), outDir)
	e.wait(res.BatchID, out, time.Minute)
	st := e.waitWebhook(res.BatchID, time.Minute)

	if st.Status != jobs.WebhookDelivered || st.Attempts != 2 || st.LastStatus != http.StatusOK {
		t.Fatalf("state %+v: want delivered on the second attempt", st)
	}
	calls, bodies, headers, verified := rcv.snapshot()
	if calls != 2 {
		t.Fatalf("%d calls, want 2 (500, then 200)", calls)
	}
	for i, err := range verified {
		if err != nil {
			t.Errorf("call %d: signature: %v", i+1, err)
		}
	}
	if d0, d1 := headers[0].Get(webhook.HeaderDelivery), headers[1].Get(webhook.HeaderDelivery); d0 == "" || d0 != d1 {
		t.Errorf("delivery IDs %q and %q: want one stable ID", d0, d1)
	}
	if got := headers[1].Get(webhook.HeaderEvent); got != webhook.EventBatchCompleted {
		t.Errorf("event header %q", got)
	}
	if got := headers[1].Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	if !strings.HasPrefix(headers[1].Get(webhook.HeaderSignature), "t="+headers[1].Get(webhook.HeaderTimestamp)+",v1=") {
		t.Errorf("signature %q does not carry the timestamp header", headers[1].Get(webhook.HeaderSignature))
	}
	var ev webhook.Event
	if err := json.Unmarshal(bodies[1], &ev); err != nil {
		t.Fatalf("body %s: %v", bodies[1], err)
	}
	c, err := e.tracker.Counts(context.Background(), res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Batch != res.BatchID || ev.Tenant != "acme" || ev.Counts.Total != 3 || ev.Counts.Done != c.Done || ev.InputTokens != c.InputTokens || ev.State != "finished" {
		t.Errorf("event %+v, counts %+v", ev, c)
	}
	own := strings.TrimRight(outDir, "/") + "/batches/" + res.BatchID + "/"
	if ev.Manifest != own+"manifest.jsonl" || ev.Report != own+"report.md" {
		t.Errorf("locations %q %q", ev.Manifest, ev.Report)
	}
	if ev.Cost == nil || *ev.Cost <= 0 || ev.Currency != "USD" {
		t.Errorf("cost %v %q: want a positive USD cost", ev.Cost, ev.Currency)
	}
	if !ev.Finished.Equal(c.Finished) || ev.Finished.IsZero() {
		t.Errorf("finished %v, batch finished %v", ev.Finished, c.Finished)
	}
	for _, b := range bodies {
		if strings.Contains(string(b), "Contract number") || strings.Contains(string(b), string(secret)) {
			t.Errorf("body carries document text or the secret: %s", b)
		}
	}
}

func TestWebhookPermanentAnswersFailForGood(t *testing.T) {
	e := newEnv(t)
	secret := []byte("s")
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 2, WebhookSecret: secret,
		WebhookRetryDelay: 10 * time.Millisecond}, nil)
	// 410 Gone, and a redirect (not followed: its answer is final too).
	batches := map[int]string{}
	receivers := map[int]*receiver{}
	for _, code := range []int{http.StatusGone, http.StatusFound} {
		receivers[code] = newReceiver(t, secret, code)
		batches[code] = e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 1)}, Out: t.TempDir(), Webhook: receivers[code].srv.URL}}).BatchID
	}
	for code, batch := range batches {
		st := e.waitWebhook(batch, time.Minute)
		if st.Status != jobs.WebhookFailed || st.Attempts != 1 || st.LastStatus != code || !strings.Contains(st.LastError, strconv.Itoa(code)) {
			t.Errorf("%d: state %+v: want failed after one attempt", code, st)
		}
		if calls, _, _, _ := receivers[code].snapshot(); calls != 1 {
			t.Errorf("%d: %d calls: want one (no retry, no redirect followed)", code, calls)
		}
	}
}

func TestWebhookWithoutSecretIsNotSent(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t, []byte("x"), http.StatusOK)
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 2}, nil)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 1)}, Out: t.TempDir(), Webhook: rcv.srv.URL}})
	st := e.waitWebhook(res.BatchID, time.Minute)
	if st.Status != jobs.WebhookFailed || !strings.Contains(st.LastError, "secret") {
		t.Fatalf("state %+v: want failed for want of a secret", st)
	}
	if calls, _, _, _ := rcv.snapshot(); calls != 0 {
		t.Fatalf("%d unsigned calls made", calls)
	}
}

// TestWebhookBacksOffFromTenSeconds checks the default backoff of a webhook
// (10s, not the items' seconds) by looking at when its retry is due.
func TestWebhookBacksOffFromTenSeconds(t *testing.T) {
	e := newEnv(t)
	secret := []byte("s")
	rcv := newReceiver(t, secret, http.StatusServiceUnavailable)
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 2, WebhookSecret: secret}, nil)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 1)}, Out: t.TempDir(), Webhook: rcv.srv.URL}})
	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ti, err := insp.GetTaskInfo(jobs.QueueCritical, webhook.TaskID(res.BatchID))
		if err == nil && ti.State == asynq.TaskStateRetry {
			if wait := time.Until(ti.NextProcessAt); wait < 5*time.Second || wait > 11*time.Second {
				t.Fatalf("first webhook retry due in %s, want about 10s", wait)
			}
			if !strings.Contains(ti.LastErr, "503") {
				t.Errorf("last error %q", ti.LastErr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook task never waited for a retry (last: %v %v)", ti, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, ok, err := e.tracker.WebhookState(context.Background(), res.BatchID)
	if err != nil || !ok || st.Status != jobs.WebhookPending || st.Attempts != 1 || st.LastStatus != http.StatusServiceUnavailable {
		t.Fatalf("state %+v ok=%v err=%v: want pending after one 503", st, ok, err)
	}
}
