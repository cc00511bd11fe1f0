package main

import (
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/worker/llm"
)

func TestPlanEstimatesWithoutSending(t *testing.T) {
	src := t.TempDir()
	text := strings.Repeat("The Supplier shall deliver the goods. ", 100) // 3800 ASCII chars ≈ 950 tokens
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pdf := jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "pdfs", "contracts"), "cuad_FederatedGovIncome_Services_Agreement.pdf"))
	if err := os.WriteFile(filepath.Join(src, "c.pdf"), pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(src, "p.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, image.NewRGBA(image.Rect(0, 0, 2688, 1344)), nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(src, "x.svg"), []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`), 0o644); err != nil {
		t.Fatal(err)
	}
	profiles := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(profiles, []byte(`profiles:
  priced:
    preset: vllm
    model: llama-4-scout
    context_tokens: 131072
    max_output_tokens: 4096
    prices: {currency: USD, input_per_million: 1000, output_per_million: 2000}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "plan", src, "--preset", "priced", "--profiles", profiles)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	row := func(kind string) []string {
		m := regexp.MustCompile(`(?m)^\s*` + kind + `\s+(.*)$`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("no %s row in:\n%s", kind, stdout)
		}
		return strings.Fields(m[1])
	}
	img := llm.EstimateImageTokens(1344, 672) // fitted to 1344 px on the long side
	doc := row("document")
	// items pages images requests in out cost currency
	if doc[0] != "2" || doc[1] != "4" || doc[3] != "2" {
		t.Errorf("document row %v: want 2 items, 4 pages, 2 requests", doc)
	}
	im := row("image")
	wantIn := img + planPromptTokens
	if im[0] != "1" || im[2] != "1" || im[4] != strconv.Itoa(wantIn) || im[5] != strconv.Itoa(planCaptionOutput) {
		t.Errorf("image row %v: want 1 item, 1 image, %d input and %d output tokens", im, wantIn, planCaptionOutput)
	}
	// 1000 USD / 1M input tokens: the image alone costs (img+500)/1000 USD plus its output.
	wantCost := float64(wantIn)/1e3 + float64(planCaptionOutput)*2/1e3
	if im[6] != ui.Money(wantCost, "") {
		t.Errorf("image cost %s, want %s", im[6], ui.Money(wantCost, ""))
	}
	if !strings.Contains(stdout, "SVG images are not supported") {
		t.Errorf("skip reason missing:\n%s", stdout)
	}
}
