package ingest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage"
)

// fakeEstimator counts a document's text at 4 bytes a token and one request
// per item; it stands in for worker/estimate (tested with ingest there).
type fakeEstimator struct {
	mu    sync.Mutex
	read  int
	price atomic.Int32 // Price calls (concurrent plans share one estimator)
}

func (f *fakeEstimator) Estimate(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte, e plan.Item) plan.Item {
	f.mu.Lock()
	f.read++
	f.mu.Unlock()
	if strings.HasSuffix(ref.Key, "bad.txt") {
		e.Skip = plan.WouldFail + "unreadable"
		return e
	}
	e.TextTokens = int(e.Size / 4)
	return f.Extrapolate(e)
}

func (f *fakeEstimator) Extrapolate(e plan.Item) plan.Item {
	e.Requests, e.InputTokens, e.OutputTokens = 1, e.TextTokens+100, 10
	return e
}

func (f *fakeEstimator) Price(p *plan.Plan) {
	f.price.Add(1)
	p.Profile, p.Priced = "fake", true
	p.All.Cost = float64(p.All.InputTokens)
}

func TestPlanSamplesExtrapolatesAndSums(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		write(t, dir, fmt.Sprintf("d%02d.txt", i), []byte(strings.Repeat("the tenant pays rent. ", 20+i*5)))
	}
	write(t, dir, "bad.txt", []byte(strings.Repeat("x", 100)))
	write(t, dir, "empty.txt", nil)
	in := &ingest.Ingester{Open: open}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: filepath.Join(t.TempDir(), "out"), Task: jobs.TaskAuto}}

	exact := &fakeEstimator{}
	p, err := in.Plan(context.Background(), o, exact, ingest.PlanOptions{Sample: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Every processable item read; the empty one skipped by the listing, the
	// unreadable one by the estimate (and counted as sampled).
	if p.Total != 12 || exact.read != 11 || p.Skipped != 2 || p.All.Items != 10 || p.Sampled != 11 || p.Extrapolated {
		t.Fatalf("exact plan %+v (read %d): want 12 items, 11 read, 2 skipped, 10 to process", p, exact.read)
	}
	if exact.price.Load() != 1 || p.Profile != "fake" || p.All.Cost != float64(p.All.InputTokens) || p.All.Requests != 10 {
		t.Errorf("plan %+v: want priced once by the estimator", p)
	}
	if d := p.Kinds[jobs.KindDocument]; d.Items != 10 || d.InputTokens != p.All.InputTokens {
		t.Errorf("documents %+v, all %+v", d, p.All)
	}

	sampled := &fakeEstimator{}
	q, err := in.Plan(context.Background(), o, sampled, ingest.PlanOptions{Sample: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !q.Extrapolated || q.Sampled != 3 || sampled.read != 3 || q.Total != 12 {
		t.Fatalf("sampled plan %+v (read %d): want 3 read, the rest extrapolated", q, sampled.read)
	}
	// The unreadable file may be in the sample (skipped) or not (counted).
	if q.All.Items+q.Skipped != 12 {
		t.Errorf("items %d + skipped %d, want 12", q.All.Items, q.Skipped)
	}
	got, want := float64(q.All.InputTokens), float64(p.All.InputTokens)
	if q.Skipped == 1 && (got < want*0.8 || got > want*1.2) {
		t.Errorf("extrapolated input tokens %.0f, exact %.0f", got, want)
	}
}

// slowEstimator blocks on items named slow* until their context ends, and
// records how many estimates ran at once.
type slowEstimator struct {
	fakeEstimator
	mu        sync.Mutex
	running   int
	maxAtOnce int
}

func (s *slowEstimator) Estimate(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte, e plan.Item) plan.Item {
	s.mu.Lock()
	s.running++
	s.maxAtOnce = max(s.maxAtOnce, s.running)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.running--; s.mu.Unlock() }()
	if strings.HasPrefix(filepath.Base(ref.Key), "slow") {
		<-ctx.Done()
		e.Skip = plan.WouldFail + ctx.Err().Error()
		return e
	}
	time.Sleep(5 * time.Millisecond)
	return s.fakeEstimator.Estimate(ctx, st, ref, head, e)
}

// Estimates run in a shared pool (never more at once than its slots, over
// concurrent plans), each under the item time limit: an item not estimated
// in time is extrapolated, not counted as failing.
func TestPlanEstimatesInABoundedPoolUnderTimeLimits(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		write(t, dir, fmt.Sprintf("d%02d.txt", i), []byte(strings.Repeat("the tenant pays rent. ", 20)))
	}
	for i := range 3 {
		write(t, dir, fmt.Sprintf("slow%d.txt", i), []byte(strings.Repeat("the tenant pays rent. ", 20)))
	}
	in := &ingest.Ingester{Open: open}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: filepath.Join(t.TempDir(), "out"), Task: jobs.TaskAuto}}
	est := &slowEstimator{}
	pool := ingest.NewEstimatePool(2)
	opts := ingest.PlanOptions{Sample: 100, Pool: pool, ItemTimeout: 100 * time.Millisecond, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	plans := make([]plan.Plan, 3)
	start := time.Now()
	for i := range plans {
		wg.Go(func() {
			p, err := in.Plan(context.Background(), o, est, opts)
			if err != nil {
				t.Error(err)
			}
			plans[i] = p
		})
	}
	wg.Wait()
	if est.maxAtOnce > 2 {
		t.Errorf("%d estimates at once, over the pool's 2", est.maxAtOnce)
	}
	for _, p := range plans {
		if p.Total != 23 || p.Skipped != 0 || p.All.Items != 23 || p.Sampled != 20 || !p.Extrapolated {
			t.Errorf("plan %+v: want 23 items, 20 estimated, the 3 slow ones extrapolated (not failing)", p)
		}
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("plans took %v", el)
	}

	// The whole estimate's limit: everything not estimated by then is
	// extrapolated.
	p, err := in.Plan(context.Background(), o, est, ingest.PlanOptions{Sample: 100, Pool: pool, ItemTimeout: time.Hour, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 23 || p.Skipped != 0 || p.Sampled >= 23 || !p.Extrapolated {
		t.Errorf("plan cut by its limit %+v: want the slow items extrapolated", p)
	}
}
