package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/tracing"
)

// TestOneDocumentsTrace runs one document through `run` with an in-memory
// exporter and follows its trace: ingest → (across the queue) task →
// fetch, extract, model call, write, all in one trace, each span the child
// of the one before it in that chain.
func TestOneDocumentsTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()); _ = tp.Shutdown(context.Background()) })

	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "lease.txt"), []byte("This lease is made between Acme and Beta. Rent is due monthly."), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", t.TempDir()); code != 0 {
		t.Fatalf("run: exit %d %s", code, stderr)
	}
	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		byID[s.SpanContext().SpanID()] = s
	}
	for _, n := range []string{tracing.SpanIngest, tracing.SpanTask, tracing.SpanFetch, tracing.SpanExtract, tracing.SpanModel, tracing.SpanWrite} {
		if len(byName[n]) == 0 {
			t.Fatalf("no %q span; spans: %v", n, names(spans))
		}
	}
	ingest := byName[tracing.SpanIngest][0]
	// ancestors lists a span's chain of parents up to its root.
	ancestors := func(s sdktrace.ReadOnlySpan) []string {
		var out []string
		for p := s.Parent(); p.IsValid(); {
			ps, ok := byID[p.SpanID()]
			if !ok {
				break
			}
			out = append(out, ps.Name())
			p = ps.Parent()
		}
		return out
	}
	task := byName[tracing.SpanTask][0]
	if task.Parent().SpanID() != ingest.SpanContext().SpanID() || !task.Parent().IsRemote() {
		t.Errorf("the task span is not the remote child of the ingest span (trace context through the payload): parent %v", task.Parent())
	}
	for _, n := range []string{tracing.SpanFetch, tracing.SpanExtract, tracing.SpanModel, tracing.SpanWrite} {
		s := byName[n][0]
		if s.SpanContext().TraceID() != ingest.SpanContext().TraceID() {
			t.Errorf("%s is in another trace", n)
		}
		if a := ancestors(s); len(a) < 2 || a[len(a)-1] != tracing.SpanIngest || !contains(a, tracing.SpanTask) {
			t.Errorf("%s's ancestors %v: want it under the task, under the ingest", n, a)
		}
	}
	model := byName[tracing.SpanModel][0]
	attrs := map[string]bool{}
	for _, kv := range model.Attributes() {
		attrs[string(kv.Key)] = true
	}
	for _, k := range []string{"gen_ai.system", "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llamapipe.retries"} {
		if !attrs[k] {
			t.Errorf("model span lacks %s: %v", k, model.Attributes())
		}
	}
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
