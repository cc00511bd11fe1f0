package worker_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// The plan against the bill: over the corpus's photos and contracts, the
// plan's input-token estimate per kind is within ±15 % of the input
// tokens a server billing like Llama 4's tokenizer reports (text ≈
// characters/4, images by 336-pixel tiles: fakeserver). The measured
// errors are logged (and stated in the README).
func TestPlanAgainstTheBill(t *testing.T) {
	e := newEnv(t)
	chat := fakeserver.New(fakeserver.Options{APIKey: "k"})
	srv := httptest.NewServer(chat)
	t.Cleanup(func() { chat.Close(); srv.Close() })
	prof := llm.Profile{Preset: "bill", Provider: llm.ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: fakeserver.DefaultModel,
		ContextTokens: 131072, MaxOutputTokens: 4096, MaxImages: 5, MaxImageBytes: 20 << 20, JSONSchema: true, TextOnly: true,
		ImageFormats: []string{"image/jpeg", "image/png"}, Prices: llm.Prices{Currency: "USD", InputPerMillion: 0.1, OutputPerMillion: 0.3}}
	model, err := openai.New(openai.Options{Profile: prof, APIKey: "k", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.runWorker(worker.Config{Model: model, Concurrency: 4}, nil)
	outDir := t.TempDir()
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{jobstest.CorpusDir(t, "images", "photos"), jobstest.CorpusDir(t, "pdfs", "contracts")},
		Out: outDir, Force: true}}
	in := &ingest.Ingester{Open: e.open}
	p, err := in.Plan(context.Background(), o, estimate.New(prof, estimate.Options{}), ingest.PlanOptions{Sample: -1})
	if err != nil {
		t.Fatal(err)
	}
	res := e.ingest(o)
	out, err := localstore.Open(outDir)
	if err != nil {
		t.Fatal(err)
	}
	billed := map[jobs.Kind]int{}
	for _, en := range e.wait(res.BatchID, out, 3*time.Minute) {
		if en.Status != jobs.StatusDone {
			t.Fatalf("%s: %s %s", en.Key, en.Status, en.Error)
		}
		billed[en.Kind] += en.InputTokens
	}
	for _, kind := range []jobs.Kind{jobs.KindImage, jobs.KindDocument} {
		planned, got := float64(p.Kinds[kind].InputTokens), float64(billed[kind])
		if got == 0 {
			t.Fatalf("%s: nothing billed", kind)
		}
		off := (planned - got) / got
		t.Logf("%s: planned %.0f input tokens, billed %.0f: %+.1f %%", kind, planned, got, 100*off)
		if off < -0.15 || off > 0.15 {
			t.Errorf("%s: the plan's input tokens are %+.1f %% off the bill, want within ±15 %%", kind, 100*off)
		}
	}
}
