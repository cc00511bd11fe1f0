package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

// TestSendFailureReasons: a failed call's reason in a span is its status
// code or error class, never its message, and calls a limiter or a
// provider batch job held back do not count as sends.
func TestSendFailureReasons(t *testing.T) {
	for _, c := range []struct {
		err    error
		reason string
		sent   bool
	}{
		{llm.HTTPError("openai", 503, nil, []byte(`{"error":{"message":"secret prompt text"}}`), "sk"), "http_503", true},
		{fmt.Errorf("fallback together: %w", llm.HTTPError("together", 429, nil, nil, "sk")), "http_429", true},
		{llm.TransportError("openai", context.DeadlineExceeded, "sk"), "timeout", true},
		{&llm.Error{Provider: ratelimit.Provider, Kind: llm.Retryable, RateLimited: true}, "rate_limited", false},
		{&llm.Error{Provider: ratelimit.FairShareProvider, Kind: llm.Retryable, RateLimited: true, Err: ratelimit.ErrDeferred}, "rate_limited", false},
		{fmt.Errorf("caption: %w", errDeferred), "batch_job", false},
	} {
		reason, sent := sendFailure(c.err)
		if reason != c.reason || sent != c.sent {
			t.Errorf("%v: reason %q sent %v, want %q %v", c.err, reason, sent, c.reason, c.sent)
		}
	}
}

// TestSpanEndMarksOnlyFailures: a task that waits (a batch answer, a rate
// limit) is not a failed span; a failure is, described by its class only.
func TestSpanEndMarksOnlyFailures(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, err := range []error{errDeferred, errors.New("disk full at /secret/path")} {
		_, span := tp.Tracer("test").Start(context.Background(), "task")
		if got := spanEnd(span, err); got != err {
			t.Errorf("spanEnd changed the error: %v", got)
		}
		span.End()
	}
	s := rec.Ended()
	if s[0].Status().Code == codes.Error || len(s[0].Events()) != 1 || s[0].Events()[0].Name != "task.deferred" {
		t.Errorf("deferred task: status %v events %v, want no error and a task.deferred event", s[0].Status(), s[0].Events())
	}
	if s[1].Status().Code != codes.Error || s[1].Status().Description != "other" {
		t.Errorf("failed task: status %+v, want an error described by its class", s[1].Status())
	}
}
