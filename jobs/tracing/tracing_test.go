package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestTraceContextCrossesThePayload: the traceparent Inject writes is
// all a task needs to continue the trace on another machine.
func TestTraceContextCrossesThePayload(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	ctx, ingest := Start(context.Background(), SpanIngest)
	tp1 := Inject(ctx)
	ingest.End()
	if len(tp1) != 55 || tp1[:3] != "00-" {
		t.Fatalf("traceparent %q", tp1)
	}
	_, task := Start(Extract(context.Background(), tp1), SpanTask)
	task.End()
	spans := rec.Ended()
	if len(spans) != 2 || spans[1].Parent().SpanID() != spans[0].SpanContext().SpanID() ||
		spans[1].SpanContext().TraceID() != spans[0].SpanContext().TraceID() || !spans[1].Parent().IsRemote() {
		t.Errorf("the task span does not continue the ingest's trace: %+v", spans)
	}
	if got := Extract(context.Background(), ""); trace.SpanContextFromContext(got).IsValid() {
		t.Error("an empty traceparent made a span context")
	}
}

// TestOffWithoutEndpoint: no endpoint, no provider installed: spans are
// the no-op ones and payloads carry no trace.
func TestOffWithoutEndpoint(t *testing.T) {
	otel.SetTracerProvider(noop.NewTracerProvider())
	shutdown, err := Setup(context.Background(), "", "llamapipe", "test")
	if err != nil || shutdown(context.Background()) != nil {
		t.Fatal(err)
	}
	ctx, span := Start(context.Background(), SpanIngest)
	defer span.End()
	if span.IsRecording() || Inject(ctx) != "" {
		t.Error("tracing is on without an endpoint")
	}
}
