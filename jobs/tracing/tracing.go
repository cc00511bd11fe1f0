// Package tracing holds llamapipe's OpenTelemetry traces: the tracer every
// stage starts its spans with, the trace context a task payload carries
// across the queue (a W3C traceparent: a reference-sized ID, no secret), and
// the OTLP exporter that is on only when an endpoint is configured.
//
// Without Setup, the global tracer provider is OpenTelemetry's no-op one:
// spans cost a context lookup and nothing is recorded or sent.
//
// It imports no other project package.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of llamapipe's spans.
const Scope = "github.com/llamapipe/llamapipe"

// Span names, one per stage of an item's life.
const (
	SpanIngest  = "ingest"     // listing the sources and enqueueing
	SpanTask    = "task"       // one asynq task of an item
	SpanMap     = "map"        // one chunk's map task of a long document (child of its item's task)
	SpanReduce  = "reduce"     // a long document's reduce task (child of its item's task)
	SpanFetch   = "fetch"      // reading the input object
	SpanExtract = "extract"    // a document's text
	SpanPrepare = "prepare"    // an image for the model
	SpanModel   = "model.call" // one model request
	SpanWrite   = "write"      // one result object

	// Tasks of a whole batch or of many items: new roots, linked to the
	// traces they serve.
	SpanFinalize = "finalize"      // a batch's manifest and report (linked to its ingest)
	SpanCollect  = "batch.collect" // batch mode: pending requests cut into provider jobs
	SpanPoll     = "batch.poll"    // batch mode: one poll of a provider job
)

// MaxLinks bounds the links one span of a batch-mode task carries to the
// items it serves (the first ones, by request ID).
const MaxLinks = 32

// Start starts a span with the global tracer provider (no-op unless Setup
// installed one).
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return otel.GetTracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

var propagator = propagation.TraceContext{}

// Inject returns ctx's span context as a W3C traceparent ("" without a
// sampled span), for a task payload.
func Inject(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

// Extract returns ctx with the remote span context of a payload's
// traceparent (ctx itself for "").
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Link returns a link to traceparent's span, for a span that serves that
// trace without being part of it; ok is false for "" or a malformed value.
func Link(traceparent string) (l trace.Link, ok bool) {
	sc := trace.SpanContextFromContext(Extract(context.Background(), traceparent))
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

// Setup installs an OTLP/HTTP exporter as the global tracer provider when
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// read by the caller) is set; the exporter reads the other standard
// OTEL_EXPORTER_OTLP_* variables itself. Without an endpoint it does nothing.
// shutdown flushes the spans still buffered.
func Setup(ctx context.Context, endpoint, service, version string) (shutdown func(context.Context) error, err error) {
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceVersion(version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return tp.Shutdown, nil
}
