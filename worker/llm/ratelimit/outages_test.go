package ratelimit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Two workers share one outage state: a run of failures counted by both
// takes the provider down for both, an answer ends the run, and the down
// mark lives only as long as the down time.
func TestOutagesSharedBetweenWorkers(t *testing.T) {
	ctx := context.Background()
	rdb1, rdb2 := newRedis(t), newRedis(t)
	a, b := Outages(rdb1, time.Minute), Outages(rdb2, time.Minute)
	const q = "llamapipe:llm:groq:scout-test-outages"
	t.Cleanup(func() { rdb1.Del(ctx, jobs.ProviderOutageKey(q)); rdb1.ZRem(ctx, jobs.ProvidersDownKey(), q) })
	if n, err := a.Failed(ctx, q); err != nil || n != 1 {
		t.Fatalf("first failure: %d, %v", n, err)
	}
	if n, _ := b.Failed(ctx, q); n != 2 {
		t.Fatalf("second failure, other worker: run of %d, want 2", n)
	}
	if err := a.Succeeded(ctx, q); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Failed(ctx, q); n != 1 {
		t.Fatalf("after an answer the run is %d, want 1", n)
	}
	until := time.Now().Add(30 * time.Second)
	if err := a.MarkDown(ctx, q, llm.Outage{Provider: "groq", Kind: "openai", Model: "scout-test-outages", Until: until, Reason: "3 connection errors"}); err != nil {
		t.Fatal(err)
	}
	got, err := b.DownUntil(ctx, q)
	if err != nil || got.UnixMilli() != until.UnixMilli() {
		t.Fatalf("other worker sees down until %v (%v), want %v", got, err, until)
	}
	if ttl := rdb1.PTTL(ctx, jobs.ProviderOutageKey(q)).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("down mark lives %v, want the down time", ttl)
	}
	if rdb1.HExists(ctx, jobs.ProviderOutageKey(q), "failures").Val() {
		t.Fatal("the run of failures is kept after the provider was marked down")
	}
	// Status, the API and the dashboard read it back (jobs/outage).
	all, err := outage.NewReader(rdb2).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(d outage.Down) bool { return d.Model == "scout-test-outages" })
	if i < 0 || all[i].Provider != "groq" || all[i].Kind != "openai" || all[i].Reason != "3 connection errors" ||
		all[i].Until.UnixMilli() != until.UnixMilli() || all[i].Since.IsZero() || all[i].Since.After(until) {
		t.Fatalf("reader: %+v", all)
	}
	if ttl := rdb1.PTTL(ctx, jobs.ProvidersDownKey()).Val(); ttl <= 0 {
		t.Fatalf("the index of providers down has TTL %v, want one", ttl)
	}
}
