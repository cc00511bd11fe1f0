package worker_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tracing"
)

// TestBatchModeSpansLinkTheirItems: in batch mode, the collector that
// submits the items' requests and the poll that hands back the answers
// each have a span of their own (group, requests, provider job), linked to
// the model calls of the items whose requests they carry.
func TestBatchModeSpansLinkTheirItems(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()); _ = tp.Shutdown(context.Background()) })

	e := newBatchModeEnv(t, oneJob)
	src, outDir := contractFolder(t, 3), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	job := e.submitted(1)
	e.complete(job)
	if _, es := e.finish(res.BatchID, outDir); len(es) != 3 {
		t.Fatalf("%d manifest entries, want 3", len(es))
	}
	spans := rec.Ended()
	// The traces of the items' model calls, and the spans the links may
	// point to.
	modelCalls := map[trace.SpanID]trace.TraceID{}
	var ingestTrace trace.TraceID
	for _, s := range spans {
		switch s.Name() {
		case tracing.SpanModel:
			modelCalls[s.SpanContext().SpanID()] = s.SpanContext().TraceID()
		case tracing.SpanIngest:
			ingestTrace = s.SpanContext().TraceID()
		}
	}
	check := func(s sdktrace.ReadOnlySpan) {
		t.Helper()
		attrs := map[string]any{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		if attrs["llamapipe.group"] == "" || attrs["llamapipe.requests"] != int64(3) {
			t.Errorf("%s: attributes %v, want the group and 3 requests", s.Name(), attrs)
		}
		if s.Parent().IsValid() || s.SpanContext().TraceID() == ingestTrace {
			t.Errorf("%s is part of an item's trace, want a root of its own", s.Name())
		}
		if len(s.Links()) != 3 {
			t.Errorf("%s: %d links, want one per request (3)", s.Name(), len(s.Links()))
		}
		for _, l := range s.Links() {
			if tr, ok := modelCalls[l.SpanContext.SpanID()]; !ok || tr != ingestTrace || l.SpanContext.TraceID() != ingestTrace {
				t.Errorf("%s links to %v: not a model call of the batch's items", s.Name(), l.SpanContext)
			}
		}
	}
	var submitted, polled bool
	for _, s := range spans {
		switch s.Name() {
		case tracing.SpanCollect:
			for _, ev := range s.Events() {
				if ev.Name == "batch.submitted" {
					submitted = true
					check(s)
					for _, kv := range ev.Attributes {
						if kv.Key == "llamapipe.job" && kv.Value.AsString() != job {
							t.Errorf("submitted event names job %s, want %s", kv.Value.AsString(), job)
						}
					}
				}
			}
		case tracing.SpanPoll:
			for _, ev := range s.Events() {
				if ev.Name == "batch.done" {
					polled = true
					check(s)
					for _, kv := range s.Attributes() {
						if kv.Key == "llamapipe.job" && kv.Value.AsString() != job {
							t.Errorf("poll span names job %s, want %s", kv.Value.AsString(), job)
						}
					}
				}
			}
		}
	}
	if !submitted || !polled {
		t.Errorf("no collector span that submitted (%v) or poll span that found the job done (%v)", submitted, polled)
	}
}
