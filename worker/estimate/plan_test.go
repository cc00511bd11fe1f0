package estimate_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
)

func ingester() *ingest.Ingester {
	return &ingest.Ingester{Open: func(ctx context.Context, loc string) (storage.Store, error) {
		return backends.Open(ctx, loc, backends.Config{})
	}}
}

// plan estimates what a batch with options o would hold under prof.
func makePlan(ctx context.Context, o ingest.Options, prof llm.Profile, opts estimate.Options, sample int) (plan.Plan, error) {
	return ingester().Plan(ctx, o, estimate.New(prof, opts), ingest.PlanOptions{Sample: sample})
}

// folder holds 6 text documents of growing size, two JPEGs and an
// unsupported SVG image.
func folder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := range 6 {
		text := strings.Repeat(fmt.Sprintf("Clause %d: the tenant pays rent monthly. ", i), 50+i*40)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("d%d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range []image.Rectangle{image.Rect(0, 0, 2688, 1344), image.Rect(0, 0, 300, 200)} {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("p%d.jpg", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, image.NewRGBA(r), nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "x.svg"), []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var priced = llm.Profile{Provider: llm.ProviderOpenAI, Preset: "priced", Model: "m", ContextTokens: 131072, MaxOutputTokens: 4096, TextOnly: true,
	Prices: llm.Prices{Currency: "USD", InputPerMillion: 1, OutputPerMillion: 2, BatchDiscount: 0.5}}

func TestEstimateExactly(t *testing.T) {
	src := folder(t)
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Task: jobs.TaskAuto}}
	p, err := makePlan(context.Background(), o, priced, estimate.Options{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 9 || p.Skipped != 1 || p.All.Items != 8 || p.Sampled != 8 || p.Extrapolated {
		t.Fatalf("plan %+v: want 9 items, 8 estimated exactly, 1 skipped", p)
	}
	if len(p.Skips) != 1 {
		t.Errorf("skips %v", p.Skips)
	}
	img := p.Kinds[jobs.KindImage]
	// The large image is fitted to 1344 px; the small one is sent as it is.
	wantImg := llm.EstimateImageTokens(1344, 672) + llm.EstimateImageTokens(300, 200)
	if img.Items != 2 || img.Images != 2 || img.ImageTokens != int64(wantImg) || img.InputTokens != int64(wantImg+2*estimate.PromptTokens) {
		t.Errorf("images %+v: want %d image tokens", img, wantImg)
	}
	doc := p.Kinds[jobs.KindDocument]
	if doc.Items != 6 || doc.Requests != 6 || doc.OutputTokens != 6*estimate.SummaryOutput || doc.InputTokens <= 6*estimate.PromptTokens {
		t.Errorf("documents %+v", doc)
	}
	wantCost := priced.Prices.Cost(llm.Usage{InputTokens: int(p.All.InputTokens), OutputTokens: int(p.All.OutputTokens)})
	if p.All.Cost != wantCost || p.All.Cost <= 0 || p.All.BatchCost == nil || *p.All.BatchCost != wantCost*0.5 {
		t.Errorf("cost %v batch %v, want %v and half", p.All.Cost, p.All.BatchCost, wantCost)
	}
	if p.Profile != "priced" || p.Currency != "USD" || !p.Priced {
		t.Errorf("profile %q currency %q priced %v", p.Profile, p.Currency, p.Priced)
	}

	// A small budget splits the documents into chunks: more requests.
	small := priced
	small.ContextTokens = 4096 + 1500
	q, err := makePlan(context.Background(), o, small, estimate.Options{MaxOutputTokens: 4096}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if q.Kinds[jobs.KindDocument].Requests <= 6 {
		t.Errorf("chunked documents: %d requests, want more than one each", q.Kinds[jobs.KindDocument].Requests)
	}
}

func TestEstimateExtrapolatesBeyondTheSample(t *testing.T) {
	src := folder(t)
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Task: jobs.TaskAuto}}
	exact, err := makePlan(context.Background(), o, priced, estimate.Options{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := makePlan(context.Background(), o, priced, estimate.Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// One item, plus the first of the other file type.
	if !p.Extrapolated || p.Sampled != 2 || p.All.Items != 8 || p.Total != 9 || p.Skipped != 1 {
		t.Fatalf("plan %+v: want 2 sampled of 8, extrapolated", p)
	}
	if img := p.Kinds[jobs.KindImage]; img.Items != 2 || img.Images != 2 || img.Requests != 2 {
		t.Errorf("images %+v", img)
	}
	got, want := float64(p.Kinds[jobs.KindDocument].InputTokens), float64(exact.Kinds[jobs.KindDocument].InputTokens)
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("document input tokens %.0f extrapolated, %.0f exact", got, want)
	}
	if p.Kinds[jobs.KindDocument].Requests != 6 || p.Kinds[jobs.KindDocument].OutputTokens != exact.Kinds[jobs.KindDocument].OutputTokens {
		t.Errorf("documents %+v, exact %+v", p.Kinds[jobs.KindDocument], exact.Kinds[jobs.KindDocument])
	}
}

func TestEstimateStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := makePlan(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{folder(t)}, Out: t.TempDir()}}, priced, estimate.Options{}, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// BenchmarkEstimateCorpus estimates the whole test corpus exactly and from
// a sample of 20 items; "token-error-%" is how far the sampled estimate's
// input tokens are from the exact count.
func BenchmarkEstimateCorpus(b *testing.B) {
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{jobstest.CorpusDir(b)}, Out: b.TempDir(), Task: jobs.TaskAuto}}
	exact, err := makePlan(context.Background(), o, priced, estimate.Options{}, -1)
	if err != nil {
		b.Fatal(err)
	}
	for _, sample := range []int{-1, 20, 50} {
		b.Run(fmt.Sprintf("sample=%d", sample), func(b *testing.B) {
			var p plan.Plan
			for b.Loop() {
				if p, err = makePlan(context.Background(), o, priced, estimate.Options{}, sample); err != nil {
					b.Fatal(err)
				}
			}
			diff := float64(p.All.InputTokens-exact.All.InputTokens) / float64(exact.All.InputTokens) * 100
			b.ReportMetric(diff, "token-error-%")
			b.ReportMetric(float64(p.Sampled), "sampled")
		})
	}
}

// A plan notes images that make up most of its cost (with the price's
// unit), and a profile without prices.
func TestPlanNotesImageCostAndMissingPrices(t *testing.T) {
	dir := folder(t)
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: t.TempDir(), Task: jobs.TaskCaption}}
	prof := llm.Builtins()["reseller"]
	prof.Prices.ImageUnit = llm.ImageUnitTokens // the misreading: 91.14 ₽ per 1K image tokens
	p, err := makePlan(context.Background(), o, prof, estimate.Options{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "images are") || !strings.Contains(p.Notes[0], "1K image tokens") || p.All.ImageCost <= p.All.Cost/2 {
		t.Errorf("per 1K image tokens: notes %q, image cost %v of %v", p.Notes, p.All.ImageCost, p.All.Cost)
	}
	prof.Prices.ImageUnit = llm.ImageUnitImages
	if p, err = makePlan(context.Background(), o, prof, estimate.Options{}, -1); err != nil {
		t.Fatal(err)
	}
	if want := 2 * 91.14 / 1e3; abs(p.All.ImageCost-want) > 1e-9 {
		t.Errorf("per 1K images: image cost %v, want %v (two images)", p.All.ImageCost, want)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "1K images") {
		t.Errorf("per 1K images: notes %q (images still dominate two captions' cost)", p.Notes)
	}
	o.Task = jobs.TaskAuto
	if p, err = makePlan(context.Background(), o, llm.Builtins()["qianfan"], estimate.Options{}, -1); err != nil {
		t.Fatal(err)
	}
	if p.Priced || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "gives no prices") {
		t.Errorf("qianfan: priced %v, notes %q", p.Priced, p.Notes)
	}
}

func abs(f float64) float64 { return max(f, -f) }
