package outage

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
)

func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// A mark is read back with its details; marking it again while it is
// down keeps its since and moves its until; once until has passed the
// reader leaves it out, and a mark whose until has passed records nothing.
func TestMarkAndRead(t *testing.T) {
	rdb, ctx := testRedis(t), context.Background()
	model := fmt.Sprintf("scout-%d", time.Now().UnixNano())
	q, q2 := jobs.ModelQuotaName("groq", model), jobs.ModelQuotaName("together", model)
	t.Cleanup(func() {
		rdb.Del(ctx, jobs.ProviderOutageKey(q), jobs.ProviderOutageKey(q2))
		rdb.ZRem(ctx, jobs.ProvidersDownKey(), q, q2)
	})
	now := time.Now().Truncate(time.Millisecond)
	long := strings.Repeat("x", 1000)
	if err := Mark(ctx, rdb, q, Down{Provider: "groq", Kind: "openai", Model: model, Until: now.Add(time.Hour), Reason: "first: " + long}, now); err != nil {
		t.Fatal(err)
	}
	if err := Mark(ctx, rdb, q, Down{Provider: "groq", Kind: "openai", Model: model, Until: now.Add(2 * time.Hour), Reason: "again"}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := Mark(ctx, rdb, q2, Down{Provider: "together", Kind: "openai", Model: model, Until: now.Add(-time.Second)}, now); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, jobs.ProviderOutageKey(q2)).Val() != 0 {
		t.Error("a mark whose until has passed was recorded")
	}
	r := NewReader(rdb)
	r.now = func() time.Time { return now.Add(30 * time.Minute) }
	all, err := r.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(d Down) bool { return d.Model == model })
	if i < 0 {
		t.Fatalf("reader: %+v lacks groq", all)
	}
	if d := all[i]; d.Provider != "groq" || d.Kind != "openai" || !d.Since.Equal(now) || !d.Until.Equal(now.Add(2*time.Hour)) || d.Reason != "again" {
		t.Errorf("read %+v: want since the first mark, until the second", d)
	}
	r.now = func() time.Time { return now.Add(3 * time.Hour) }
	if all, _ := r.All(ctx); slices.ContainsFunc(all, func(d Down) bool { return d.Model == model }) {
		t.Error("a provider whose until has passed is still read as down")
	}
	if err := Mark(ctx, rdb, q2, Down{Provider: "together", Model: model, Until: now.Add(time.Hour), Reason: long}, now); err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(rdb.HGet(ctx, jobs.ProviderOutageKey(q2), "reason").Val())); n > maxReason+1 {
		t.Errorf("a reason of %d runes is kept, want at most %d", n, maxReason+1)
	}
}

// A batch is told of its own model (by provider and model) and of its
// fallback presets (by name), not of others.
func TestForBatch(t *testing.T) {
	all := []Down{
		{Provider: "groq", Kind: "openai", Model: "scout"},
		{Provider: "together", Kind: "openai", Model: "Llama-4-Scout"},
		{Provider: "openrouter", Kind: "openai", Model: "llama-4-scout"},
		{Provider: "dashscope", Kind: "dashscope", Model: "scout"},
	}
	b := jobs.Batch{Spec: jobs.Spec{Provider: "openai", Model: "scout", Options: jobs.Options{Fallback: []string{"together"}}}}
	var got []string
	for _, d := range ForBatch(b, all) {
		got = append(got, d.Provider)
	}
	if !slices.Equal(got, []string{"groq", "together"}) {
		t.Errorf("told of %v, want groq (its model) and together (its fallback)", got)
	}
}
