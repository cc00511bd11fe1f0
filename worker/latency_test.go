package worker_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/series"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// The batch's series counts every request the model server answered, once,
// and their mean latency is at least the server's latency and below the
// mean duration of the items that made them.
func TestSeriesCountsModelLatency(t *testing.T) {
	const latency = 150 * time.Millisecond
	e := newEnv(t)
	fs := fakeserver.New(fakeserver.Options{Latency: latency})
	srv := httptest.NewServer(fs)
	t.Cleanup(func() { fs.Close(); srv.Close() })
	prof := llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: fakeserver.DefaultModel,
		ContextTokens: 131072, MaxOutputTokens: 4096, JSONSchema: true, TextOnly: true}
	model, err := openai.New(openai.Options{Profile: prof, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.runWorker(worker.Config{Model: model, Concurrency: 2}, nil)
	outDir := t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{textInputs(t, 4)}, Out: outDir}})
	out, err := localstore.Open(outDir)
	if err != nil {
		t.Fatal(err)
	}
	var itemMS int64
	entries := e.wait(res.BatchID, out, 2*time.Minute)
	for _, en := range entries {
		if en.Status != jobs.StatusDone {
			t.Fatalf("%s: %s %s", en.Key, en.Status, en.Error)
		}
		itemMS += en.DurationMS
	}
	sum := e.modelCalls(res.BatchID)
	if st := fs.Stats(); int64(sum.ModelCalls) != st.Requests || sum.ModelErrors != 0 || sum.ModelCalls < len(entries) {
		t.Fatalf("series counted %d calls (%d failed), the server answered %d requests for %d items", sum.ModelCalls, sum.ModelErrors, st.Requests, len(entries))
	}
	mean, _ := sum.MeanModelMS()
	itemMean := float64(itemMS) / float64(len(entries))
	t.Logf("mean model call %.0f ms (server latency %v), mean item %.0f ms", mean, latency, itemMean)
	if mean < float64(latency.Milliseconds()) || mean >= itemMean {
		t.Errorf("mean model latency %.0f ms, want at least the server's %v and below the items' mean duration %.0f ms", mean, latency, itemMean)
	}
}

// modelCalls sums the model calls a batch's series counted.
func (e *env) modelCalls(batch string) series.Bucket {
	e.t.Helper()
	h, err := e.tracker.Series(context.Background(), batch)
	if err != nil {
		e.t.Fatal(err)
	}
	var sum series.Bucket
	for _, b := range series.Parse(h) {
		sum.ModelCalls, sum.ModelMS, sum.ModelErrors = sum.ModelCalls+b.ModelCalls, sum.ModelMS+b.ModelMS, sum.ModelErrors+b.ModelErrors
	}
	return sum
}
