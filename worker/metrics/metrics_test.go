package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
)

func TestItemEndedCountsByKindAndStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ItemEnded(jobs.KindImage, "done", 2*time.Second)
	m.ItemEnded(jobs.KindImage, "done", 3*time.Second)
	m.ItemEndedFor("legal", jobs.KindDocument, "failed", time.Second)

	if got := testutil.ToFloat64(m.items.WithLabelValues("image", "done", "")); got != 2 {
		t.Errorf("image/done = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.items.WithLabelValues("document", "failed", "legal")); got != 1 {
		t.Errorf("document/failed = %v, want 1", got)
	}
	want := `
# HELP llamapipe_items_total Items that reached a final status, by kind (document, image, other), status (done, failed, skipped) and tenant (empty: none).
# TYPE llamapipe_items_total counter
llamapipe_items_total{kind="document",status="failed",tenant="legal"} 1
llamapipe_items_total{kind="image",status="done",tenant=""} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), ItemsTotal); err != nil {
		t.Error(err)
	}
	// The histogram's sum is the total wall time.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != ItemDuration {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if labels(mt.GetLabel()) == "image/done" {
				if h := mt.GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() != 5 {
					t.Errorf("image/done duration: count %d sum %v, want 2 and 5", h.GetSampleCount(), h.GetSampleSum())
				}
			}
		}
	}
}

func labels(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetValue())
	}
	return strings.Join(parts, "/")
}

func TestModelRequestRecordsLatencyTokensCostAndErrorClass(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ModelRequest("openai", "scout", 300*time.Millisecond, 1000, 200, 0.25, nil)
	m.ModelRequest("openai", "scout", 100*time.Millisecond, 0, 0, 0, &llm.Error{Kind: llm.Retryable, Provider: "openai", Status: 429, RateLimited: true})
	m.ModelRequest("openai", "scout", 100*time.Millisecond, 0, 0, 0, fmt.Errorf("ask: %w", &llm.Error{Kind: llm.Retryable, Provider: "openai", Status: 503}))

	checks := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.requests.WithLabelValues("openai", "scout", "ok"), 1},
		{m.requests.WithLabelValues("openai", "scout", "error"), 2},
		{m.tokens.WithLabelValues("openai", "scout", "input", ""), 1000},
		{m.tokens.WithLabelValues("openai", "scout", "output", ""), 200},
		{m.cost.WithLabelValues("openai", "scout", "", ""), 0.25},
		{m.errors.WithLabelValues("openai", "scout", ClassRateLimited), 1},
		{m.errors.WithLabelValues("openai", "scout", ClassServer), 1},
	}
	for i, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("check %d: %v, want %v", i, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series, want 1 (provider, model)", n)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&llm.Error{Kind: llm.Retryable, Status: 429, RateLimited: true}, ClassRateLimited},
		{&llm.Error{Kind: llm.Retryable, Status: 502}, ClassServer},
		{&llm.Error{Kind: llm.Retryable, Status: 408}, ClassTimeout},
		{&llm.Error{Kind: llm.Retryable, Err: context.DeadlineExceeded}, ClassTimeout},
		{&llm.Error{Kind: llm.Retryable, Err: fmt.Errorf("read: %w", timeoutErr{})}, ClassTimeout},
		{&llm.Error{Kind: llm.Retryable, Err: errors.New("connection reset by peer")}, ClassTransport},
		{&llm.Error{Kind: llm.TooLarge, Status: 413}, ClassTooLarge},
		{&llm.Error{Kind: llm.Permanent, Status: 400}, ClassBadRequest},
		{fmt.Errorf("caption: %w", &llm.Error{Kind: llm.Fatal, Status: 401}), ClassAuth},
		{fmt.Errorf("ask: %w", context.Canceled), ClassCanceled},
		{context.DeadlineExceeded, ClassTimeout},
		{errors.New("something else"), ClassOther},
	} {
		if got := ErrorClass(c.err); got != c.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// Names must list exactly the series the metrics export, so alert rules
// checked against it reference real series.
func TestNamesMatchExportedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ItemEnded(jobs.KindImage, "done", time.Second)
	m.ModelRequest("p", "m", time.Second, 1, 1, 1, errors.New("x"))
	m.ImagePrepared(time.Millisecond)
	m.TextExtracted(jobs.FilePDF, time.Millisecond)
	m.RateLimitWait(time.Millisecond)
	m.Retry("transport")
	m.Deferred("legal")
	m.BatchModeFailure("groq-scout", "collect")
	m.ProviderDown("groq", "scout", time.Now().Add(time.Hour))

	h := httptest.NewServer(Handler(reg))
	defer h.Close()
	res, err := http.Get(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	exported := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		exported[name] = true
	}
	names := Names()
	for _, n := range names {
		if !exported[n] {
			t.Errorf("Names lists %s, which /metrics does not export", n)
		}
	}
	for n := range exported {
		if !slices.Contains(names, n) {
			t.Errorf("/metrics exports %s, which Names does not list", n)
		}
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.ItemEnded(jobs.KindImage, "done", time.Second)
	m.ModelRequest("p", "m", time.Second, 1, 1, 1, nil)
	m.ImagePrepared(time.Second)
	m.TextExtracted(jobs.FilePDF, time.Second)
	m.RateLimitWait(time.Second)
	m.Retry("x")
	m.Deferred("x")
	m.ItemEndedFor("t", jobs.KindImage, "done", time.Second)
	m.ModelRequestFor("t", "p", "m", time.Second, 1, 1, 1, "USD", nil)
	m.ProviderDown("p", "m", time.Now().Add(time.Hour))
}

// The provider-down gauge is 1 from the mark until the down time ends,
// then 0 by itself; an "up" for a provider never seen down makes no
// series, and an earlier mark's end does not clear a later one.
func TestProviderDownGauge(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ProviderDown("together", "scout", time.Time{})
	if n := testutil.CollectAndCount(m.down); n != 0 {
		t.Fatalf("%d series for a provider never seen down", n)
	}
	m.ProviderDown("groq", "scout", time.Now().Add(50*time.Millisecond))
	m.ProviderDown("groq", "scout", time.Now().Add(time.Hour)) // taken down again, for longer
	m.ProviderDown("reseller", "scout", time.Now().Add(50*time.Millisecond))
	if v := testutil.ToFloat64(m.down.WithLabelValues("groq", "scout")); v != 1 {
		t.Fatalf("groq down: gauge %v", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.down.WithLabelValues("reseller", "scout")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gauge stayed 1 after the down time ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(m.down.WithLabelValues("groq", "scout")); v != 1 {
		t.Fatalf("the first mark's end cleared the later one: gauge %v", v)
	}
	m.ProviderDown("groq", "scout", time.Time{}) // a call went to it and was answered
	if v := testutil.ToFloat64(m.down.WithLabelValues("groq", "scout")); v != 0 {
		t.Fatalf("groq up again: gauge %v", v)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var pingErr error
	ping := func(ctx context.Context) error { return pingErr }
	srv := httptest.NewServer(Mux(prometheus.NewRegistry(), ping))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d with Redis up", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d with Redis up", code)
	}
	pingErr = errors.New("dial tcp 10.0.0.7:6379: connection refused")
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d with Redis down, want 200 (the process is up)", code)
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Redis down, want 503", code)
	}
	if strings.Contains(body, "10.0.0.7") {
		t.Errorf("/readyz shows the ping error: %q", body)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics = %d", code)
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	l, err := netListen(t)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, Mux(prometheus.NewRegistry(), nil), nil) }()
	res, err := http.Get("http://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/healthz = %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

type fakeModel struct {
	resp llm.Response
	err  error
}

func (f fakeModel) Complete(context.Context, llm.Request) (llm.Response, error) { return f.resp, f.err }
func (f fakeModel) Profile() llm.Profile {
	return llm.Profile{Provider: "openai", Model: "scout", Prices: llm.Prices{Currency: "USD", InputPerMillion: 1000, OutputPerMillion: 2000}}
}

func TestInstrumentRecordsEachRequest(t *testing.T) {
	if c := Instrument(fakeModel{}, nil); c != (fakeModel{}) {
		t.Error("Instrument with nil metrics wraps the client")
	}
	reg := prometheus.NewRegistry()
	m := New(reg)
	ok := Instrument(fakeModel{resp: llm.Response{Usage: llm.Usage{InputTokens: 1000, OutputTokens: 500}}}, m)
	if _, err := llm.For(ok, llm.NewTask("legal")).Complete(context.Background(), llm.Request{}); err != nil {
		t.Fatal(err)
	}
	limited := Instrument(fakeModel{err: &llm.Error{Kind: llm.Retryable, Status: 429, RateLimited: true}}, m)
	if _, err := limited.Complete(context.Background(), llm.Request{}); err == nil {
		t.Fatal("error not passed through")
	}
	if got := testutil.ToFloat64(m.tokens.WithLabelValues("openai", "scout", "input", "legal")); got != 1000 {
		t.Errorf("input tokens of tenant legal %v", got)
	}
	// 1000 input at 1000/M plus 500 output at 2000/M, for the bound task's tenant.
	if got := testutil.ToFloat64(m.cost.WithLabelValues("openai", "scout", "legal", "USD")); got < 1.9999 || got > 2.0001 {
		t.Errorf("cost in USD %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("openai", "scout", ClassRateLimited)); got != 1 {
		t.Errorf("rate-limited errors %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("openai", "scout", "ok")); got != 1 {
		t.Errorf("ok requests %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.cost); n != 1 {
		t.Errorf("%d cost series, want only tenant legal's", n)
	}
	m.Deferred("legal")
	m.Deferred("legal")
	if got := testutil.ToFloat64(m.deferred.WithLabelValues("legal")); got != 2 {
		t.Errorf("deferred %v, want 2", got)
	}
}
