package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// profiled is a gated fake provider with its own profile (preset, model,
// prices), as a fallback preset's client has.
type profiled struct {
	*gated
	p llm.Profile
}

func (c profiled) Profile() llm.Profile { return c.p }

// downProvider answers every call with a 503 and counts them.
type downProvider struct {
	p     llm.Profile
	calls atomic.Int64
}

func (d *downProvider) Complete(context.Context, llm.Request) (llm.Response, error) {
	d.calls.Add(1)
	return llm.Response{}, &llm.Error{Provider: "openai", Kind: llm.Retryable, Status: 503, Message: "upstream unavailable"}
}

func (d *downProvider) Profile() llm.Profile { return d.p }

func budgetsOf(t *testing.T, yaml string) *tenants.Budgets {
	t.Helper()
	cfg, err := tenants.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &tenants.Budgets{File: tenants.Static(cfg)}
}

// While the primary is down, a tenant over its share is deferred by the
// fallback's own gate exactly as the primary's would defer it: the
// fallback never has more calls in flight than the tenants file's slots,
// and the deferral is the gate's (ErrDeferred, counted by tenant).
func TestFallbackCallsPassTheTenantGate(t *testing.T) {
	rdb, model, ctx := newRedis(t), uniqueKey(t), context.Background()
	b := budgetsOf(t, "slots: 2\nwaiting: 1\ntenants: {a: {share: 1}, b: {share: 1}}\n")
	primary := &downProvider{p: llm.Profile{Preset: "groq", Provider: "openai", Model: model}}
	g := newGated()
	var deferred atomic.Int64
	onDefer := func(tenant string) {
		if tenant == "a" {
			deferred.Add(1)
		}
	}
	fbs, err := TenantGates(map[string]llm.Client{"together": profiled{g, llm.Profile{Preset: "together", Provider: "openai", Model: model}}}, rdb, b, 8, onDefer)
	if err != nil {
		t.Fatal(err)
	}
	out := &llm.MemoryOutages{}
	if err := out.MarkDown(ctx, "groq", llm.Outage{Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	chain := llm.NewFallback([]llm.Link{{Name: "groq", Client: TenantGate(primary, rdb, b, 8, onDefer)},
		{Name: "together", Client: fbs["together"]}}, out, llm.FallbackPolicy{})
	a1, a2 := call(chain, ctx, "a"), call(chain, ctx, "a")
	<-g.entered
	<-g.entered
	a3 := call(chain, ctx, "a") // waits for one of the fallback's 2 slots
	waitWaiters(t, rdb, jobs.ModelQuotaName("together", model), 1)
	_, err = llm.For(chain, llm.NewTask("a")).Complete(ctx, llm.Request{}) // the waiting room is full
	isDeferred(t, err, FairShareOptions{Defer: time.Second})
	if !strings.Contains(err.Error(), "fallback together") {
		t.Errorf("deferral %q does not say it was the fallback's", err)
	}
	if deferred.Load() != 1 {
		t.Errorf("%d deferrals of tenant a counted, want 1", deferred.Load())
	}
	close(g.release)
	for _, ch := range []chan error{a1, a2, a3} {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
	if g.most != 2 {
		t.Errorf("the fallback had %d calls in flight at once, want the 2 slots", g.most)
	}
	if n := primary.calls.Load(); n != 0 {
		t.Errorf("the down primary got %d calls", n)
	}
}

// A deferral by the primary's gate is not an outage, however short
// --fallback-max-wait is: the call is deferred, the primary stays up and
// the fallback is not asked.
func TestGateDeferralIsNotAnOutage(t *testing.T) {
	rdb, model, ctx := newRedis(t), uniqueKey(t), context.Background()
	b := budgetsOf(t, "slots: 1\nwaiting: 1\ntenants: {a: {share: 1}}\n")
	g := newGated()
	backup := &counter{}
	out := &llm.MemoryOutages{}
	chain := llm.NewFallback([]llm.Link{{Name: "groq", Client: TenantGate(profiled{g, llm.Profile{Preset: "groq", Provider: "openai", Model: model}}, rdb, b, 8, nil)},
		{Name: "together", Client: backup}}, out, llm.FallbackPolicy{Failures: 1, MaxWait: time.Millisecond})
	a1 := call(chain, ctx, "a")
	<-g.entered
	a2 := call(chain, ctx, "a")
	waitWaiters(t, rdb, jobs.ModelQuotaName("groq", model), 1)
	_, err := llm.For(chain, llm.NewTask("a")).Complete(ctx, llm.Request{})
	isDeferred(t, err, FairShareOptions{Defer: time.Second})
	close(g.release)
	for _, ch := range []chan error{a1, a2} {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
	if until, _ := out.DownUntil(ctx, "groq"); !until.IsZero() {
		t.Errorf("a deferral took the primary down until %v", until)
	}
	if n := backup.calls.Load(); n != 0 {
		t.Errorf("the fallback got %d calls", n)
	}
}

// A fallback priced in another currency than the tenants' money budgets
// is refused up front, naming it; one in the same currency is gated.
func TestTenantGatesRefuseAnotherCurrency(t *testing.T) {
	b := budgetsOf(t, "currency: USD\ntenants: {a: {share: 1, budget: {daily: {cost: 5}}}}\n")
	usd := &downProvider{p: llm.Profile{Preset: "together", Provider: "openai", Model: "m", Prices: llm.Prices{Currency: "USD", InputPerMillion: 1}}}
	rub := &downProvider{p: llm.Profile{Preset: "reseller", Provider: "openai", Model: "m", Prices: llm.Prices{Currency: "RUB", InputPerMillion: 18}}}
	_, err := TenantGates(map[string]llm.Client{"together": usd, "reseller": rub}, nil, b, 8, nil)
	if !errors.Is(err, tenants.ErrCurrency) || !strings.Contains(err.Error(), "fallback reseller") || !strings.Contains(err.Error(), "RUB") {
		t.Fatalf("error %v: want the reseller refused for its RUB prices", err)
	}
	gated, err := TenantGates(map[string]llm.Client{"together": usd}, nil, b, 8, nil)
	if err != nil || gated["together"] == llm.Client(usd) {
		t.Fatalf("a USD fallback: %v (gated: %v)", err, gated["together"] != llm.Client(usd))
	}
	if same, err := TenantGates(map[string]llm.Client{"reseller": rub}, nil, nil, 8, nil); err != nil || same["reseller"] != llm.Client(rub) {
		t.Fatalf("without a tenants file: %v", err)
	}
}
