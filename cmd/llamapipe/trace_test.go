package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
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

// recordSpans installs an in-memory exporter as the global tracer provider
// for the test.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()); _ = tp.Shutdown(context.Background()) })
	return rec
}

// spanIndex is the ended spans by name and by span ID.
type spanIndex struct {
	all    []sdktrace.ReadOnlySpan
	byName map[string][]sdktrace.ReadOnlySpan
	byID   map[trace.SpanID]sdktrace.ReadOnlySpan
}

func indexSpans(spans []sdktrace.ReadOnlySpan) spanIndex {
	ix := spanIndex{all: spans, byName: map[string][]sdktrace.ReadOnlySpan{}, byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}}
	for _, s := range spans {
		ix.byName[s.Name()] = append(ix.byName[s.Name()], s)
		ix.byID[s.SpanContext().SpanID()] = s
	}
	return ix
}

// ancestors lists a span's chain of parents up to its root, nearest first.
func (ix spanIndex) ancestors(s sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for p := s.Parent(); p.IsValid(); {
		ps, ok := ix.byID[p.SpanID()]
		if !ok {
			break
		}
		out = append(out, ps)
		p = ps.Parent()
	}
	return out
}

// under reports whether s descends from the span anc.
func (ix spanIndex) under(s, anc sdktrace.ReadOnlySpan) bool {
	for _, a := range ix.ancestors(s) {
		if a.SpanContext().SpanID() == anc.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

func attrMap(s sdktrace.ReadOnlySpan) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// TestLongDocumentsTrace runs a contract that is split into chunks (the
// offline model with a small context window) and follows its ONE trace:
// ingest → the item's task → each chunk's map task and the reduce (children
// of the item's task, across the queue), extraction, every model call
// (under the map or reduce that made it, with its attempts) and the write;
// the batch's finalize is a trace of its own, linked to this one.
func TestLongDocumentsTrace(t *testing.T) {
	rec := recordSpans(t)
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	root := t.TempDir()
	src, out := filepath.Join(root, "src"), filepath.Join(root, "out")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	pdf := jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "pdfs", "contracts"), "cuad_FederatedGovIncome_Services_Agreement.pdf"))
	if err := os.WriteFile(filepath.Join(src, "long.pdf"), pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	profiles := filepath.Join(root, "profiles.yaml")
	if err := os.WriteFile(profiles, []byte("profiles:\n  tiny:\n    preset: llama-api\n    provider: offline\n    model: offline\n    base_url: \"\"\n    no_api_key: true\n    text_only: true\n    context_tokens: 8192\n    max_output_tokens: 1024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", out, "--preset", "tiny", "--profiles", profiles); code != 0 {
		t.Fatalf("run: exit %d %s", code, stderr)
	}
	es := manifest(t, filepath.Join(out, "manifest.jsonl"))
	if len(es) != 1 || es[0].Status != jobs.StatusDone || es[0].Chunks < 2 {
		t.Fatalf("want one long document mapped in chunks: %+v", es)
	}
	ix := indexSpans(rec.Ended())
	one := func(name string) sdktrace.ReadOnlySpan {
		if len(ix.byName[name]) != 1 {
			t.Fatalf("%d %q spans, want 1; spans: %v", len(ix.byName[name]), name, names(ix.all))
		}
		return ix.byName[name][0]
	}
	ingest, task, reduce, finalize := one(tracing.SpanIngest), one(tracing.SpanTask), one(tracing.SpanReduce), one(tracing.SpanFinalize)
	maps := ix.byName[tracing.SpanMap]
	if len(maps) != es[0].Chunks {
		t.Fatalf("%d map spans for %d chunks", len(maps), es[0].Chunks)
	}
	traceID := ingest.SpanContext().TraceID()
	// One trace: every span but the finalize's.
	for _, s := range ix.all {
		if s.Name() != tracing.SpanFinalize && s.SpanContext().TraceID() != traceID {
			t.Errorf("%s is in another trace", s.Name())
		}
	}
	if task.Parent().SpanID() != ingest.SpanContext().SpanID() {
		t.Errorf("the item's task is not the ingest's child")
	}
	chunks := map[int64]bool{}
	for _, s := range append(append([]sdktrace.ReadOnlySpan{}, maps...), reduce) {
		if s.Parent().SpanID() != task.SpanContext().SpanID() || !s.Parent().IsRemote() {
			t.Errorf("%s %v is not the remote child of the item's task (trace context through its payload)", s.Name(), s.Attributes())
		}
		if s.Name() == tracing.SpanMap {
			chunks[attrMap(s)["llamapipe.chunk"].AsInt64()] = true
		}
	}
	if len(chunks) != len(maps) {
		t.Errorf("map spans name %d distinct chunks, want %d", len(chunks), len(maps))
	}
	// Every map and the reduce made a model call under it; every model
	// call says who answered, what it cost in tokens and how many attempts
	// it took.
	calls := ix.byName[tracing.SpanModel]
	for _, parent := range append(append([]sdktrace.ReadOnlySpan{}, maps...), reduce) {
		n := 0
		for _, c := range calls {
			if ix.under(c, parent) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no model call under %s %v", parent.Name(), parent.Attributes())
		}
	}
	for _, c := range calls {
		a := attrMap(c)
		for _, k := range []string{"gen_ai.system", "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llamapipe.attempts"} {
			if _, ok := a[k]; !ok {
				t.Errorf("model span lacks %s: %v", k, c.Attributes())
			}
		}
		if a["llamapipe.attempts"].AsInt64() != 1 || a["gen_ai.usage.input_tokens"].AsInt64() <= 0 {
			t.Errorf("model span %v: want one attempt and its tokens", c.Attributes())
		}
	}
	for _, n := range []string{tracing.SpanFetch, tracing.SpanExtract, tracing.SpanWrite} {
		if len(ix.byName[n]) == 0 {
			t.Errorf("no %s span; spans: %v", n, names(ix.all))
		}
		for _, s := range ix.byName[n] {
			if !ix.under(s, task) {
				t.Errorf("%s is not under the item's task", n)
			}
		}
	}
	// The finalize: its own trace, linked to the one of the batch's ingest.
	if finalize.Parent().IsValid() || len(finalize.Links()) != 1 || finalize.Links()[0].SpanContext.TraceID() != traceID {
		t.Errorf("finalize: parent %v, links %v: want a root linked to the ingest's trace", finalize.Parent(), finalize.Links())
	}
}

// TestModelRetryInTrace: the provider answers the first request 503 and
// the next 200. The trace shows both sends: the failed one's span with its
// reason (the status code, no message), and the re-send (the queue's retry
// of the task) with attempts=2 and a model.retry event naming the 503.
func TestModelRetryInTrace(t *testing.T) {
	rec := recordSpans(t)
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	fs := fakeserver.New(fakeserver.Options{APIKey: "sk-test"})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") && calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"message":"overloaded, try again","type":"server_error"}}`))
			return
		}
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer fs.Close()
	t.Setenv("LLAMAPIPE_API_KEY", "sk-test")
	src, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "lease.txt"), []byte("This lease is made between Acme and Beta. Rent is due monthly."), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", out,
		"--provider", "openai", "--base-url", srv.URL+"/v1", "--model", "llama-4-scout"); code != 0 {
		t.Fatalf("run: exit %d %s", code, stderr)
	}
	es := manifest(t, filepath.Join(out, "manifest.jsonl"))
	if len(es) != 1 || es[0].Status != jobs.StatusDone || es[0].Attempts != 2 {
		t.Fatalf("want one item done in 2 attempts: %+v", es)
	}
	// The failed send was kept for the re-send's span, and dropped once
	// the item was recorded.
	if keys, err := rdb.Keys(context.Background(), "*:kept:"+es[0].Item).Result(); err != nil || len(keys) != 0 {
		t.Errorf("kept sends left in Redis after the item was recorded: %v %v", keys, err)
	}
	ix := indexSpans(rec.Ended())
	calls2 := ix.byName[tracing.SpanModel]
	if len(calls2) != 2 {
		t.Fatalf("%d model spans, want 2 (the 503 and the re-send): %v", len(calls2), names(ix.all))
	}
	ingest := ix.byName[tracing.SpanIngest][0]
	events := func(s sdktrace.ReadOnlySpan, name string) []map[string]attribute.Value {
		var out []map[string]attribute.Value
		for _, e := range s.Events() {
			if e.Name == name {
				m := map[string]attribute.Value{}
				for _, kv := range e.Attributes {
					m[string(kv.Key)] = kv.Value
				}
				out = append(out, m)
			}
		}
		return out
	}
	var failed, resent sdktrace.ReadOnlySpan
	for _, s := range calls2 {
		if s.SpanContext().TraceID() != ingest.SpanContext().TraceID() {
			t.Errorf("a model call is outside the document's trace")
		}
		if s.Status().Code == codes.Error {
			failed = s
		} else {
			resent = s
		}
	}
	if failed == nil || resent == nil {
		t.Fatalf("want one failed and one answered model span: %v / %v", calls2[0].Status(), calls2[1].Status())
	}
	if a := attrMap(failed); a["llamapipe.attempts"].AsInt64() != 1 {
		t.Errorf("failed send: attempts %v, want 1", a["llamapipe.attempts"])
	}
	if ev := events(failed, "model.error"); len(ev) != 1 || ev[0]["llamapipe.reason"].AsString() != "http_503" || !ev[0]["llamapipe.sent"].AsBool() {
		t.Errorf("failed send's events %v: want model.error http_503", failed.Events())
	}
	a := attrMap(resent)
	if a["llamapipe.attempts"].AsInt64() != 2 || a["llamapipe.retries"].AsInt64() != 1 || a["gen_ai.usage.output_tokens"].AsInt64() <= 0 ||
		a["llamapipe.preset"].AsString() == "" {
		t.Errorf("re-send: %v: want attempts 2, the task's retry 1, tokens and the provider", resent.Attributes())
	}
	if ev := events(resent, "model.retry"); len(ev) != 1 || ev[0]["llamapipe.reason"].AsString() != "http_503" || ev[0]["llamapipe.attempt"].AsInt64() != 2 {
		t.Errorf("re-send's events %v: want one model.retry naming the 503", resent.Events())
	}
	// No message (which could quote the request) in any span.
	for _, s := range ix.all {
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				if strings.Contains(kv.Value.Emit(), "overloaded") || strings.Contains(kv.Value.Emit(), "sk-test") {
					t.Errorf("%s event %s carries the provider's message or the key: %v", s.Name(), e.Name, kv)
				}
			}
		}
		if strings.Contains(s.Status().Description, "overloaded") {
			t.Errorf("%s status carries the provider's message", s.Name())
		}
	}
}
