package llm_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// chatServer is a fake OpenAI-compatible endpoint: answer decides each
// call's fate by its number (1-based); nil answers normally.
func chatServer(t *testing.T, model string, answer func(n int64, w http.ResponseWriter) bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if answer != nil && answer(n, w) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":%q,"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"answer from %s"}}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`, model, model)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func chatClient(t *testing.T, url, model string) llm.Client {
	t.Helper()
	c, err := openai.New(openai.Options{Profile: llm.Profile{Provider: "openai", BaseURL: url + "/v1", Model: model, TextOnly: true}, APIKey: "sk-test-key", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func status(code int, header ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"message":"status %d","type":"x","code":"x"}}`, code)
	}
}

func ask(c llm.Client) (llm.Response, error) {
	return c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hello", Document: true}}})
}

// A primary that goes down after 3 answers (503s, or connection resets):
// once a run of failures takes it down, every call goes to the fallback
// and says so; no call that got an answer went to both.
func TestFallbackPrimaryGoesDown(t *testing.T) {
	for name, fail := range map[string]func(w http.ResponseWriter){
		"503":   status(503),
		"reset": reset,
	} {
		t.Run(name, func(t *testing.T) {
			prim, primCalls := chatServer(t, "scout-primary", func(n int64, w http.ResponseWriter) bool {
				if n > 3 {
					fail(w)
					return true
				}
				return false
			})
			fb, fbCalls := chatServer(t, "scout-fallback", nil)
			c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "scout-primary")},
				{Name: "together", Client: chatClient(t, fb.URL, "scout-fallback")}}, &llm.MemoryOutages{},
				llm.FallbackPolicy{Failures: 2, CoolDown: time.Hour})
			var byProvider = map[string]int{}
			var failed int
			for i := 0; i < 10; i++ {
				resp, err := ask(c)
				if err != nil {
					if llm.KindOf(err) != llm.Retryable {
						t.Fatalf("call %d: %v, want a retryable error", i, err)
					}
					failed++
					continue
				}
				byProvider[resp.Provider]++
				if want := map[string]string{"groq": "scout-primary", "together": "scout-fallback"}[resp.Provider]; resp.Model != want {
					t.Fatalf("call %d: provider %q answered with model %q", i, resp.Provider, resp.Model)
				}
			}
			// 3 answers, 1 failure left to the queue's retry, the second
			// failure moves to the fallback, then 5 more go there directly.
			if byProvider["groq"] != 3 || byProvider["together"] != 6 || failed != 1 {
				t.Fatalf("answers by provider %v, %d failed; want groq 3, together 6, 1 failed", byProvider, failed)
			}
			if primCalls.Load() != 5 || fbCalls.Load() != 6 {
				t.Fatalf("primary got %d calls, fallback %d; want 5 and 6 (a down primary is not asked)", primCalls.Load(), fbCalls.Load())
			}
		})
	}
}

// Answers that are not outages never reach the fallback: a bad key stops
// (Fatal), a bad request is the item's, a 2xx we could not read was paid
// for, and a short 429 wait is waited for.
func TestFallbackNotOnOwnOrConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		fail func(w http.ResponseWriter)
		kind llm.ErrorKind
	}{
		"401": {status(401), llm.Fatal},
		"403": {status(403), llm.Fatal},
		"400": {status(400), llm.Permanent},
		"garbage 200": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"choices":[`))
		}, llm.Retryable},
		"429 short":    {status(429, "Retry-After", "1"), llm.Retryable},
		"429 no retry": {status(429), llm.Retryable},
	} {
		t.Run(name, func(t *testing.T) {
			prim, _ := chatServer(t, "p", func(_ int64, w http.ResponseWriter) bool { tc.fail(w); return true })
			fb, fbCalls := chatServer(t, "f", nil)
			c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "p")},
				{Name: "together", Client: chatClient(t, fb.URL, "f")}}, &llm.MemoryOutages{}, llm.FallbackPolicy{Failures: 1})
			for i := 0; i < 3; i++ {
				_, err := ask(c)
				if k := llm.KindOf(err); k != tc.kind {
					t.Fatalf("call %d: error %v of kind %v, want %v", i, err, k, tc.kind)
				}
			}
			if n := fbCalls.Load(); n != 0 {
				t.Fatalf("fallback got %d calls, want none", n)
			}
		})
	}
}

// A 429 whose wait is over the bound takes the primary down at once.
func TestFallbackLong429(t *testing.T) {
	prim, primCalls := chatServer(t, "p", func(_ int64, w http.ResponseWriter) bool { status(429, "Retry-After", "3600")(w); return true })
	fb, _ := chatServer(t, "f", nil)
	out := &llm.MemoryOutages{}
	c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "p")},
		{Name: "together", Client: chatClient(t, fb.URL, "f")}}, out, llm.FallbackPolicy{MaxWait: time.Minute})
	for i := 0; i < 3; i++ {
		resp, err := ask(c)
		if err != nil || resp.Provider != "together" {
			t.Fatalf("call %d: %v from %q, want an answer from together", i, err, resp.Provider)
		}
	}
	if primCalls.Load() != 1 {
		t.Fatalf("primary got %d calls, want 1", primCalls.Load())
	}
	until, _ := out.DownUntil(context.Background(), "groq")
	if d := time.Until(until); d < 50*time.Minute {
		t.Fatalf("primary down for %v, want the provider's hour", d)
	}
}

// TestFallbackSwitchIsASpanEvent: the call that takes the primary down and
// goes on to the fallback leaves a model.fallback event on the caller's
// span naming both providers and the status code that took it down; a
// later call that skips the down primary says so too.
func TestFallbackSwitchIsASpanEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prim, _ := chatServer(t, "scout-primary", func(_ int64, w http.ResponseWriter) bool { status(503)(w); return true })
	fb, _ := chatServer(t, "scout-fallback", nil)
	c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "scout-primary")},
		{Name: "together", Client: chatClient(t, fb.URL, "scout-fallback")}}, nil, llm.FallbackPolicy{Failures: 1})
	for range 2 {
		ctx, span := tp.Tracer("test").Start(context.Background(), "model.call")
		if _, err := c.Complete(ctx, llm.Request{Parts: []llm.Part{{Text: "hello", Document: true}}}); err != nil {
			t.Fatal(err)
		}
		span.End()
	}
	var got []string
	for _, s := range rec.Ended() {
		for _, e := range s.Events() {
			if e.Name != "model.fallback" {
				continue
			}
			m := map[string]string{}
			for _, kv := range e.Attributes {
				m[string(kv.Key)] = kv.Value.AsString()
			}
			got = append(got, m["llamapipe.from"]+">"+m["llamapipe.to"]+":"+m["llamapipe.reason"])
		}
	}
	if len(got) != 2 || got[0] != "groq>together:http_503" || got[1] != "groq>together:down" {
		t.Errorf("fallback events %v", got)
	}
}

// The policy's thresholds decide when the switch happens: with the same
// failing primary, Failures sets how many calls fail before one is
// answered by the fallback (zero: the default 3), and MaxWait whether a
// 429's wait is waited for or taken as an outage.
func TestFallbackPolicyThresholds(t *testing.T) {
	for name, tc := range map[string]struct {
		fail         func(w http.ResponseWriter)
		pol          llm.FallbackPolicy
		failedBefore int // calls that fail before the first fallback answer; -1: none reaches it
	}{
		"after 1":          {status(503), llm.FallbackPolicy{Failures: 1}, 0},
		"after 4":          {status(503), llm.FallbackPolicy{Failures: 4}, 3},
		"after default":    {status(503), llm.FallbackPolicy{}, 2},
		"429 over 10s":     {status(429, "Retry-After", "30"), llm.FallbackPolicy{MaxWait: 10 * time.Second}, 0},
		"429 within 1m":    {status(429, "Retry-After", "30"), llm.FallbackPolicy{MaxWait: time.Minute}, -1},
		"429 default (2m)": {status(429, "Retry-After", "30"), llm.FallbackPolicy{}, -1},
	} {
		t.Run(name, func(t *testing.T) {
			prim, _ := chatServer(t, "p", func(_ int64, w http.ResponseWriter) bool { tc.fail(w); return true })
			fb, _ := chatServer(t, "f", nil)
			c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "p")},
				{Name: "together", Client: chatClient(t, fb.URL, "f")}}, &llm.MemoryOutages{}, tc.pol)
			failed := -1
			for i := 0; i < 6; i++ {
				resp, err := ask(c)
				if err == nil {
					if resp.Provider != "together" {
						t.Fatalf("call %d answered by %q", i, resp.Provider)
					}
					failed = i
					break
				}
				if llm.KindOf(err) != llm.Retryable {
					t.Fatalf("call %d: %v, want a retryable error", i, err)
				}
			}
			if failed != tc.failedBefore {
				t.Fatalf("%d calls failed before the fallback answered (-1: it never did), want %d", failed, tc.failedBefore)
			}
		})
	}
}

// recordingOutages keeps what MarkDown was told.
type recordingOutages struct {
	llm.MemoryOutages
	marks []llm.Outage
}

func (r *recordingOutages) MarkDown(ctx context.Context, name string, o llm.Outage) error {
	r.marks = append(r.marks, o)
	return r.MemoryOutages.MarkDown(ctx, name, o)
}

// What a chain records of a provider it takes down names it, its model
// and protocol, and says why with the status and code, never the
// provider's message (every tenant sees the reason).
func TestFallbackRecordsWhyItWentDown(t *testing.T) {
	for name, tc := range map[string]struct {
		fail func(w http.ResponseWriter)
		pol  llm.FallbackPolicy
		want string
	}{
		"503":      {status(503), llm.FallbackPolicy{Failures: 2}, "2 connection errors or 5xx answers in a row, the last: HTTP 503 x"},
		"long 429": {status(429, "Retry-After", "600"), llm.FallbackPolicy{}, "a 429 asking to wait 10m0s, over the 2m0s worth waiting (HTTP 429 x)"},
	} {
		t.Run(name, func(t *testing.T) {
			prim, _ := chatServer(t, "p", func(_ int64, w http.ResponseWriter) bool { tc.fail(w); return true })
			fb, _ := chatServer(t, "f", nil)
			out := &recordingOutages{}
			c := llm.NewFallback([]llm.Link{{Name: "groq", Client: chatClient(t, prim.URL, "scout-p")},
				{Name: "together", Client: chatClient(t, fb.URL, "f")}}, out, tc.pol)
			for i := 0; i < 3 && len(out.marks) == 0; i++ {
				_, _ = ask(c)
			}
			if len(out.marks) != 1 {
				t.Fatalf("marks %+v, want one", out.marks)
			}
			m := out.marks[0]
			if m.Provider != "groq" || m.Kind != "openai" || m.Model != "scout-p" || m.Reason != tc.want || strings.Contains(m.Reason, "status 5") {
				t.Fatalf("mark %+v, want groq's scout-p with reason %q", m, tc.want)
			}
		})
	}
}
