package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

func (e *env) redis() redis.UniversalClient {
	rdb := jobstest.ConnOpt(e.t, e.url).MakeRedisClient().(redis.UniversalClient)
	e.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// answerAfter answers every request with a good summary after a delay.
func answerAfter(delay time.Duration) *fakeModel {
	return &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 8192, MaxOutputTokens: 1024},
		fn: func(n int64, req llm.Request) (llm.Response, error) {
			time.Sleep(delay)
			return llm.Response{Text: goodSummary, Model: "m", Usage: llm.Usage{InputTokens: 100, OutputTokens: 10}}, nil
		}}
}

// A burst of one tenant does not hold back another tenant's few items:
// tenant a queues 300 items, then tenant b 10, on one worker pool; b's 10
// finish while a still has more than 200 to go.
func TestFairShareSmallTenantIsNotHeldBackByABurst(t *testing.T) {
	e := newEnv(t)
	rdb := e.redis()
	cfg, err := tenants.Parse([]byte("tenants: {a: {share: 1}, b: {share: 1}}"))
	if err != nil {
		t.Fatal(err)
	}
	budgets := &tenants.Budgets{File: tenants.Static(cfg), Ledger: tenants.NewLedger(rdb, ""), Tracker: e.tracker}
	model := ratelimit.FairShare(answerAfter(200*time.Millisecond), rdb, "llamapipe:test:fair", ratelimit.FairShareOptions{
		Slots: 4, Share: cfg.Share})
	big := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 300)}, Out: t.TempDir(), Tenant: "a"}})
	small := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 10)}, Out: t.TempDir(), Tenant: "b"}})
	e.runWorker(worker.Config{Model: model, Concurrency: 16, Tenants: budgets}, nil)

	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := e.tracker.Counts(ctx, small.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Ended() == 10 {
			if c.Done != 10 {
				t.Fatalf("tenant b's items: %+v, want 10 done", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant b's 10 items not done after 2 minutes: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := e.tracker.Counts(ctx, big.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("when tenant b's 10 items were done, tenant a had %d of 300 done", c.Ended())
	if left := 300 - c.Ended(); left <= 200 {
		t.Errorf("tenant b's 10 items finished only when tenant a had %d of 300 left, want more than 200", left)
	}
	if c.Failed != 0 {
		t.Errorf("tenant a: %d items failed; deferrals must not fail items", c.Failed)
	}
}

// A tenant with no budget left pauses (its items wait in the retry set
// without failing or calling the model) and resumes when the budget is
// raised; what the items spend is charged to the tenant.
func TestSpentBudgetPausesAndRaisedBudgetResumes(t *testing.T) {
	e := newEnv(t)
	rdb := e.redis()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	write := func(s string, mod time.Time) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write("tenants: {p: {budget: {daily: {tokens: 50}}}}", time.Now().Add(-time.Hour))
	f, err := tenants.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.CheckEvery = time.Millisecond
	budgets := &tenants.Budgets{File: f, Ledger: tenants.NewLedger(rdb, ""), Tracker: e.tracker}
	if err := budgets.Charge(ctx, "p", tenants.Spend{Tokens: 50}); err != nil {
		t.Fatal(err)
	}
	model := answerAfter(0)
	outDir := t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 3)}, Out: outDir, Tenant: "p"}})
	e.runWorker(worker.Config{Model: model, Concurrency: 3, Tenants: budgets}, nil)

	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	deadline := time.Now().Add(30 * time.Second)
	var paused []*asynq.TaskInfo
	for len(paused) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 items paused after 30s", len(paused))
		}
		time.Sleep(20 * time.Millisecond)
		paused, err = insp.ListRetryTasks(jobs.QueueDefault)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
	}
	for _, ti := range paused {
		if ti.Retried != 0 || !strings.Contains(ti.LastErr, "budget spent") {
			t.Errorf("paused task: retried %d, last error %q; want 0 (not a failure) and the budget named", ti.Retried, ti.LastErr)
		}
		if wait := time.Until(ti.NextProcessAt); wait < time.Minute && ti.NextProcessAt.Before(f.Config().NextDay(time.Now())) {
			t.Errorf("paused task comes back in %v, want minutes (or the next day)", wait)
		}
	}
	if n := model.calls.Load(); n != 0 {
		t.Errorf("the model was called %d times with the budget spent", n)
	}
	if c, _ := e.tracker.Counts(ctx, res.BatchID); c.Ended() != 0 {
		t.Errorf("paused items ended: %+v", c)
	}

	// Raise the budget (hot reload) and let the paused items come back now
	// instead of in five minutes.
	write("tenants: {p: {budget: {daily: {tokens: 100000}}}}", time.Now())
	if _, err := insp.RunAllRetryTasks(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		c, err := e.tracker.Counts(ctx, res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Complete() {
			if c.Done != 3 {
				t.Fatalf("after the raise: %+v, want 3 done", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not resumed after the budget was raised: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := e.open(ctx, outDir)
	if err != nil {
		t.Fatal(err)
	}
	e.wait(res.BatchID, out, 30*time.Second)
	st, err := budgets.Status(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.tracker.Counts(ctx, res.BatchID)
	if want := 50 + c.InputTokens + c.OutputTokens; st.Today.Tokens != want || c.InputTokens == 0 {
		t.Errorf("tenant p spent %d tokens today, want the 50 before plus the batch's %d", st.Today.Tokens, want-50)
	}
	// The report names the tenant with its spend and what is left.
	rc, err := out.Get(ctx, "report.md", nil)
	if err != nil {
		t.Fatal(err)
	}
	report, _ := io.ReadAll(rc)
	rc.Close()
	want := fmt.Sprintf("- Tenant: p: today 0.00 and %d tokens (%d of 100000 tokens left)", st.Today.Tokens, 100000-st.Today.Tokens)
	if !strings.Contains(string(report), want) {
		t.Errorf("report.md does not say %q:\n%s", want, report)
	}
}
