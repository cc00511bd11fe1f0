package ratelimit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// Rate-limit headers that tighten and then relax: after an answer saying
// no requests are left until a reset, another worker (its own Redis
// connection) waits for the reset before calling; the next answer says
// there is room again and the hold is lifted.
func TestLearnedLimitsTightenAndRelax(t *testing.T) {
	var mu sync.Mutex
	var calls []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls = append(calls, time.Now())
		n := len(calls)
		mu.Unlock()
		if n == 1 { // tighten: no request left until the reset
			w.Header().Set("x-ratelimit-remaining-requests", "0")
			w.Header().Set("x-ratelimit-reset-requests", "300ms")
		} else { // relax
			w.Header().Set("x-ratelimit-remaining-requests", "499")
			w.Header().Set("x-ratelimit-remaining-tokens", "190000")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`)
	}))
	defer srv.Close()
	prof := llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: "m", ContextTokens: 8192, MaxOutputTokens: 64, TextOnly: true}
	client := func() llm.Client {
		c, err := openai.New(openai.Options{Profile: prof, APIKey: "k", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	quota := fmt.Sprintf("llamapipe:llm:test-learn-%d:m", time.Now().UnixNano())
	ctx := context.Background()
	req := llm.Request{Parts: []llm.Part{{Text: "hi"}}}
	rdb1, rdb2 := newRedis(t), newRedis(t)
	w1, w2 := Learn(client(), rdb1, quota), Learn(client(), rdb2, quota)

	if _, err := w1.Complete(ctx, req); err != nil {
		t.Fatal(err)
	}
	until, err := Held(ctx, rdb2, quota)
	if err != nil || until.IsZero() {
		t.Fatalf("no hold after an answer with no requests left: %v %v", until, err)
	}
	// A worker whose task cannot wait that long does not call.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	_, err = w2.Complete(short, req)
	cancel()
	if !llm.IsRateLimited(err) {
		t.Errorf("call during the hold: %v, want a rate-limited error", err)
	}
	// The call that waited for the hold says so in its span (the hold is
	// set again, so that this call surely meets it).
	hold := until
	if soon := time.Now().Add(500 * time.Millisecond); hold.Before(soon) {
		hold = soon
	}
	if err := rdb2.Set(ctx, jobs.ProviderHoldKey(quota), hold.UnixMilli(), time.Until(hold)+time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sctx, span := tp.Tracer("test").Start(ctx, "model.call")
	if _, err := w2.Complete(sctx, req); err != nil {
		t.Fatal(err)
	}
	span.End()
	if ev := rec.Ended()[0].Events(); len(ev) != 1 || ev[0].Name != "rate_limit.wait" || ev[0].Attributes[0].Value.AsString() != "provider_hold" ||
		ev[0].Attributes[1].Value.AsInt64() <= 0 {
		t.Errorf("span events %v: want one rate_limit.wait for the provider's hold", ev)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[1].Before(until) {
		t.Fatalf("calls %v: want 2, the second after the hold (until %v)", calls, until)
	}
	if until, err := Held(ctx, rdb1, quota); err != nil || !until.IsZero() {
		t.Errorf("hold %v (%v) after an answer with room again: want none", until, err)
	}
}

func TestRateLimitsHold(t *testing.T) {
	h := http.Header{}
	h.Set("x-ratelimit-remaining-requests", "12")
	h.Set("x-ratelimit-remaining-tokens", "800")
	h.Set("x-ratelimit-reset-tokens", "6m0s")
	l, ok := llm.ParseRateLimits(h, time.Now())
	if !ok || l.RemainingRequests != 12 || l.RemainingTokens != 800 || l.ResetTokens != 6*time.Minute {
		t.Fatalf("parsed %+v %v", l, ok)
	}
	if d := l.Hold(500); d != 0 {
		t.Errorf("room for 500 tokens: hold %v", d)
	}
	if d := l.Hold(1000); d != 6*time.Minute {
		t.Errorf("1000 tokens with 800 left: hold %v, want the tokens' reset", d)
	}
	if _, ok := llm.ParseRateLimits(http.Header{}, time.Now()); ok {
		t.Error("no headers parsed as limits")
	}
}
