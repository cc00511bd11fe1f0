package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	down "github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// fallbackModels are a primary (preset "groq") whose server answers
// through fail, and a fallback (preset "together"); both fake
// OpenAI-compatible servers.
func fallbackModels(t *testing.T, fail func(n int64, w http.ResponseWriter) bool) (primary, backup llm.Client, primSrv, backSrv *fakeserver.Server) {
	t.Helper()
	open := func(preset, model string, wrap func(http.Handler) http.Handler) (llm.Client, *fakeserver.Server) {
		fs := fakeserver.New(fakeserver.Options{Model: model})
		srv := httptest.NewServer(wrap(fs))
		t.Cleanup(func() { fs.Close(); srv.Close() })
		prof := llm.Profile{Preset: preset, Provider: llm.ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: model,
			ContextTokens: 131072, MaxOutputTokens: 4096, JSONSchema: true, TextOnly: true,
			Prices: llm.Prices{Currency: "USD", InputPerMillion: 0.1, OutputPerMillion: 0.3}}
		c, err := openai.New(openai.Options{Profile: prof, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c, fs
	}
	var calls atomic.Int64
	primary, primSrv = open("groq", "scout-groq", func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fail(calls.Add(1), w) {
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	backup, backSrv = open("together", "scout-together", func(h http.Handler) http.Handler { return h })
	return primary, backup, primSrv, backSrv
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"message":"upstream unavailable","type":"server_error"}}`)
}

func resetConn(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// A primary that goes down mid-batch (503s, or connections reset): the
// items move to the fallback; every item is in the manifest once, done,
// with the provider and model that answered it (also in its result's
// meta); no answered call was sent twice; the report splits tokens and
// cost by provider.
func TestFallbackWhenPrimaryGoesDownMidBatch(t *testing.T) {
	for name, fail := range map[string]func(http.ResponseWriter){"503": unavailable, "reset": resetConn} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			primary, backup, primSrv, backSrv := fallbackModels(t, func(n int64, w http.ResponseWriter) bool {
				if n > 6 {
					fail(w)
					return true
				}
				return false
			})
			e.runWorker(worker.Config{Model: primary, Concurrency: 2, Fallbacks: map[string]llm.Client{"together": backup},
				FallbackPolicy: llm.FallbackPolicy{Failures: 2, CoolDown: time.Hour}}, nil)
			src, outDir := textInputs(t, 20), t.TempDir()
			res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, MaxRetry: 3,
				Options: jobs.Options{Fallback: []string{"together"}}}})
			out, _ := e.open(context.Background(), outDir)
			es := e.wait(res.BatchID, out, 2*time.Minute)
			seen := map[string]bool{}
			for _, en := range es {
				if seen[en.Item] {
					t.Fatalf("%s twice in the manifest", en.Key)
				}
				seen[en.Item] = true
			}
			if len(es) != 20 {
				t.Fatalf("%d manifest entries, want 20", len(es))
			}
			want := map[string]string{"groq": "scout-groq", "together": "scout-together"}
			by := map[string]int{}
			paid := map[string]int64{} // requests the results say they made
			for _, en := range es {
				if en.Status != jobs.StatusDone {
					t.Fatalf("%s: %s %s", en.Key, en.Status, en.Error)
				}
				if want[en.Provider] == "" || en.Model != want[en.Provider] {
					t.Fatalf("%s: answered by provider %q with model %q", en.Key, en.Provider, en.Model)
				}
				by[en.Provider]++
				meta, _ := readJSON(t, out, en.Results[0])["meta"].(map[string]any)
				if meta["provider"] != en.Provider || meta["model"] != en.Model {
					t.Fatalf("%s: meta says %v/%v, manifest %s/%s", en.Key, meta["provider"], meta["model"], en.Provider, en.Model)
				}
				n, _ := meta["requests"].(float64)
				paid[en.Provider] += int64(n)
			}
			if by["groq"] == 0 || by["together"] == 0 {
				t.Fatalf("items by provider %v: want both", by)
			}
			// Every answer paid for is one result's request: none was asked
			// again, of either provider.
			// (An item whose calls straddle the switch is recorded under the
			// provider of its last answer, so the sum is compared.)
			if p, b := primSrv.Stats().OK, backSrv.Stats().OK; p+b != paid["groq"]+paid["together"] {
				t.Fatalf("servers answered %d (groq) and %d (together) calls; the results made %v", p, b, paid)
			}
			rep := readReport(t, out)
			for _, s := range []string{"## Tokens and cost by provider", "| groq | scout-groq |", "| together | scout-together |"} {
				if !strings.Contains(rep, s) {
					t.Fatalf("report lacks %q:\n%s", s, rep)
				}
			}
		})
	}
}

// A primary that refuses the key stops the batch: a configuration error,
// not an outage, so nothing goes to the fallback.
func TestFallbackNotOnBadKey(t *testing.T) {
	e := newEnv(t)
	primary, backup, _, backSrv := fallbackModels(t, func(_ int64, w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"invalid API key","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return true
	})
	e.runWorker(worker.Config{Model: primary, Concurrency: 2, Fallbacks: map[string]llm.Client{"together": backup},
		FallbackPolicy: llm.FallbackPolicy{Failures: 1}}, nil)
	src, outDir := textInputs(t, 10), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir,
		Options: jobs.Options{Fallback: []string{"together"}}}})
	out, _ := e.open(context.Background(), outDir)
	es := e.wait(res.BatchID, out, time.Minute)
	if len(es) != 10 {
		t.Fatalf("%d entries, want 10", len(es))
	}
	for _, en := range es {
		if en.Status != jobs.StatusFailed || !strings.Contains(en.Error, "invalid API key") {
			t.Fatalf("entry %+v", en)
		}
	}
	if n := backSrv.Stats().Requests; n != 0 {
		t.Fatalf("the fallback got %d requests after a 401, want none", n)
	}
	if c, _ := e.tracker.Counts(context.Background(), res.BatchID); !strings.Contains(c.Fatal, "invalid API key") {
		t.Fatalf("batch fatal %q", c.Fatal)
	}
}

func readReport(t *testing.T, out storage.Store) string {
	t.Helper()
	rc, err := out.Get(context.Background(), "report.md", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A primary that goes down mid-batch shows as down while it is: the
// worker's llamapipe_provider_down gauge is 1 for it (and the fallback
// that answers has no series), and the outage reader that status, the
// API and the dashboard use names it for the batch, with since, until
// and the reason; a batch that does not use it is not told.
func TestProviderDownShowsInMetricsAndStatus(t *testing.T) {
	e := newEnv(t)
	rdb := jobstest.ConnOpt(t, e.url).MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { rdb.Close() })
	primary, backup, _, _ := fallbackModels(t, func(n int64, w http.ResponseWriter) bool {
		if n > 4 {
			unavailable(w)
			return true
		}
		return false
	})
	reg := prometheus.NewRegistry()
	start := time.Now()
	e.runWorker(worker.Config{Model: primary, Concurrency: 2, Fallbacks: map[string]llm.Client{"together": backup},
		Outages: ratelimit.Outages(rdb, time.Hour), FallbackPolicy: llm.FallbackPolicy{Failures: 2, CoolDown: time.Hour},
		Metrics: metrics.New(reg)}, nil)
	src, outDir := textInputs(t, 12), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, MaxRetry: 3,
		Provider: llm.ProviderOpenAI, Model: "scout-groq", Options: jobs.Options{Fallback: []string{"together"}}}})
	out, _ := e.open(context.Background(), outDir)
	if es := e.wait(res.BatchID, out, 2*time.Minute); len(es) != 12 {
		t.Fatalf("%d manifest entries, want 12", len(es))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauge := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == metrics.ProviderDown {
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				gauge[l["provider"]+"/"+l["model"]] = m.GetGauge().GetValue()
			}
		}
	}
	if gauge["groq/scout-groq"] != 1 || len(gauge) != 1 {
		t.Fatalf("%s: %v, want groq/scout-groq 1 and nothing else", metrics.ProviderDown, gauge)
	}
	b, err := e.tracker.Get(context.Background(), res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	providers, err := down.NewReader(rdb).ProvidersDown(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(providers) != 1 {
		t.Fatalf("providers down for the batch: %+v, want groq", providers)
	}
	d := providers[0]
	if d.Provider != "groq" || d.Model != "scout-groq" || d.Since.Before(start.Add(-time.Second)) || d.Until.Sub(d.Since) < 59*time.Minute ||
		!strings.Contains(d.Reason, "in a row, the last: HTTP 503") || strings.Contains(d.Reason, "upstream unavailable") {
		t.Fatalf("provider down %+v: want groq's scout-groq, down for the hour's cool-down since this test, with the last status (not the provider's message, which every tenant would see)", d)
	}
	other := b
	other.Provider, other.Model, other.Options.Fallback = llm.ProviderOpenAI, "llama-4-maverick", nil
	if got := down.ForBatch(other, providers); len(got) != 0 {
		t.Fatalf("a batch on another model is told %+v", got)
	}
}
