package finalize

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// fakeTracker keeps one batch in memory.
type fakeTracker struct {
	mu        sync.Mutex
	batch     jobs.Batch
	counts    jobs.Counts
	entries   []jobs.Entry
	finalized time.Time
	retention time.Duration
	webhook   *jobs.WebhookState
	attempts  int
}

func (f *fakeTracker) Get(_ context.Context, id string) (jobs.Batch, error) {
	if id != f.batch.ID {
		return jobs.Batch{}, jobs.ErrNoBatch
	}
	return f.batch, nil
}
func (f *fakeTracker) Counts(context.Context, string) (jobs.Counts, error) { return f.counts, nil }
func (f *fakeTracker) EachEntry(_ context.Context, _ string, fn func(jobs.Entry) error) error {
	for _, e := range f.entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeTracker) Expire(_ context.Context, _ jobs.Batch, retention time.Duration, _ time.Time) error {
	f.retention = retention
	return nil
}
func (f *fakeTracker) MarkFinalized(_ context.Context, _ string, at time.Time) error {
	f.finalized = at
	return nil
}
func (f *fakeTracker) WebhookState(context.Context, string) (jobs.WebhookState, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.webhook == nil {
		return jobs.WebhookState{}, false, nil
	}
	return *f.webhook, true, nil
}
func (f *fakeTracker) SetWebhookState(_ context.Context, _ string, st jobs.WebhookState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.webhook = &st
	return nil
}
func (f *fakeTracker) CountWebhookAttempt(context.Context, string) (int, error) {
	f.attempts++
	return f.attempts, nil
}

// fakeEnqueuer records the task types it is given.
type fakeEnqueuer struct{ types []string }

func (e *fakeEnqueuer) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	e.types = append(e.types, t.Type())
	return &asynq.TaskInfo{}, nil
}

type fakeTenants struct{ st tenants.Status }

func (f fakeTenants) Status(context.Context, string) (tenants.Status, error) { return f.st, nil }

var (
	_ tracker      = (*fakeTracker)(nil)
	_ enqueuer     = (*fakeEnqueuer)(nil)
	_ tenantStatus = fakeTenants{}
)

var created = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func testBatch(out, webhook string) (jobs.Batch, jobs.Counts, []jobs.Entry) {
	b := jobs.Batch{ID: "b1", Created: created, Spec: jobs.Spec{Sources: []string{"s3://in/docs/"}, Task: jobs.TaskSummarize, Out: out,
		Provider: "openai", Model: "scout", Tenant: "legal", Webhook: webhook}}
	entries := []jobs.Entry{
		{Item: "1", Source: "s3://in/docs/a.pdf", Kind: "pdf", Status: jobs.StatusDone, InputTokens: 100, OutputTokens: 20, Cost: 0.5, Currency: "USD"},
		{Item: "2", Source: "s3://in/docs/b.pdf", Kind: "pdf", Status: jobs.StatusFailed, Error: "unreadable pdf"},
		{Item: "3", Source: "s3://in/docs/c.png", Kind: "image", Status: jobs.StatusSkipped, Error: "too small"},
	}
	c := jobs.Counts{Total: 3, Done: 1, Failed: 1, Skipped: 1, Sealed: true, InputTokens: 100, OutputTokens: 20, Cost: 0.5}
	return b, c, entries
}

func TestReportTotalsReasonsAndTenant(t *testing.T) {
	b, c, entries := testBatch("s3://out/", "")
	finished := created.Add(90 * time.Second)
	got := Report(b, c, entries, finished)
	for _, want := range []string{"# llamapipe batch b1", "- Model: scout (openai)", "- Tenant: legal\n", "- Wall time: 1m30s",
		"| 3 | 1 | 1 | 1 | 0 |", "| pdf | 2 | 1 | 1 | 0 | 100 | 20 | 0.5000 USD |",
		"## Failures by reason", "### unreadable pdf (1)", "- s3://in/docs/b.pdf", "## Skipped by reason", "### too small (1)"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	st := tenants.Status{Tenant: "legal", Today: tenants.Spend{Cost: 1.25, Tokens: 120}}
	withTenant := ReportWithTenant(b, c, entries, finished, st)
	if want := "- Tenant: " + st.Summary("USD") + "\n"; !strings.Contains(withTenant, want) {
		t.Errorf("report with tenant lacks %q:\n%s", want, withTenant)
	}
}

func TestWebhookRetryDelayDoublesUpToAnHour(t *testing.T) {
	for _, c := range []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{0, 0, 10 * time.Second}, {0, 1, 20 * time.Second}, {0, 3, 80 * time.Second},
		{time.Second, 2, 4 * time.Second}, {0, 20, time.Hour}, {2 * time.Hour, 0, time.Hour},
	} {
		if got := WebhookRetryDelay(c.base, c.n); got != c.want {
			t.Errorf("WebhookRetryDelay(%s, %d) = %s, want %s", c.base, c.n, got, c.want)
		}
	}
}

func newTestFinalizer(t *testing.T, tr *fakeTracker, enq *fakeEnqueuer, cfg Config) (*Finalizer, storage.Store) {
	t.Helper()
	out, err := localstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracker, cfg.Enqueuer = tr, enq
	cfg.Open = func(context.Context, string) (storage.Store, error) { return out, nil }
	cfg.Now = func() time.Time { return created.Add(time.Minute) }
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, out
}

func TestFinalizeWritesManifestAndReportAndQueuesTheWebhook(t *testing.T) {
	b, c, entries := testBatch("file:///out/", "https://example.test/hook")
	tr := &fakeTracker{batch: b, counts: c, entries: entries}
	enq := &fakeEnqueuer{}
	st := tenants.Status{Tenant: "legal"}
	f, out := newTestFinalizer(t, tr, enq, Config{Tenants: fakeTenants{st}})
	task, err := jobs.NewFinalizeTask(b.ID, jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.HandleFinalize(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	read := func(key string) string {
		rc, err := out.Get(context.Background(), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, _ := io.ReadAll(rc)
		return string(data)
	}
	if lines := strings.Split(strings.TrimSpace(read(jobs.ManifestKey)), "\n"); len(lines) != 3 {
		t.Errorf("manifest has %d lines, want 3", len(lines))
	}
	if report := read(jobs.ReportKey); !strings.Contains(report, "- Tenant: "+st.Summary("USD")) {
		t.Errorf("report lacks the tenant's status:\n%s", report)
	}
	if !tr.finalized.Equal(created.Add(time.Minute)) {
		t.Errorf("finalized at %s", tr.finalized)
	}
	if len(enq.types) != 1 || enq.types[0] != webhook.TypeTask {
		t.Errorf("enqueued %v, want one webhook", enq.types)
	}

	tr.counts.Done, tr.counts.Failed = 0, 0 // no longer complete
	if err := f.HandleFinalize(context.Background(), task); err == nil {
		t.Error("an incomplete batch was finalized")
	}
}

func TestHandleWebhookSignsAndRecordsTheDelivery(t *testing.T) {
	secret := []byte("s3cret")
	var got struct {
		header http.Header
		body   []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.header = r.Header.Clone()
		got.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	b, c, entries := testBatch("file:///out/", srv.URL)
	tr := &fakeTracker{batch: b, counts: c, entries: entries}
	f, _ := newTestFinalizer(t, tr, &fakeEnqueuer{}, Config{WebhookSecret: secret, Priced: true, Currency: "USD"})
	task, err := webhook.NewTask(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.HandleWebhook(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify(secret, got.header, got.body, created.Add(time.Minute), 0); err != nil {
		t.Errorf("signature: %v", err)
	}
	var ev webhook.Event
	if err := json.Unmarshal(got.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Cost == nil || *ev.Cost != 0.5 || ev.Currency != "USD" {
		t.Errorf("event cost %v %q, want 0.5 USD", ev.Cost, ev.Currency)
	}
	if tr.webhook == nil || tr.webhook.Status != jobs.WebhookDelivered || tr.webhook.Attempts != 1 || tr.webhook.LastStatus != http.StatusNoContent {
		t.Errorf("webhook state %+v, want delivered after one attempt", tr.webhook)
	}
	// Delivered: a second run sends nothing.
	got.body = nil
	if err := f.HandleWebhook(context.Background(), task); err != nil || got.body != nil {
		t.Errorf("second run: err %v, sent %q", err, got.body)
	}
}
