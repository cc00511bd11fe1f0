package llm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinsAreValid(t *testing.T) {
	b := Builtins()
	for _, name := range []string{"llama-api", "groq", "together", "openrouter", "qianfan", "reseller", "vllm", "ollama", "dashscope", "dashscope-intl", "bedrock-scout", "bedrock-maverick"} {
		p, ok := b[name]
		if !ok {
			t.Errorf("preset %s missing", name)
			continue
		}
		if err := validateProfile(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if p.Preset != name {
			t.Errorf("%s: Preset %q", name, p.Preset)
		}
		if p.Provider == ProviderOpenAI && !strings.HasPrefix(p.BaseURL, "http") {
			t.Errorf("%s: base URL %q", name, p.BaseURL)
		}
	}
	q := b["qianfan"]
	if q.BaseURL != "https://qianfan.baidubce.com/v2" || q.MaxOutputTokens != 8192 || q.MaxImageBytes != 10<<20 || q.LegacyMaxTokens {
		t.Errorf("qianfan %+v", q)
	}
	r := b["reseller"].Prices
	if r.Currency != "RUB" || r.InputPerMillion != 18 || r.OutputPerMillion != 59 || r.ImagePerThousand != 91.14 {
		t.Errorf("reseller prices %+v", r)
	}
	if b["dashscope"].TextOnly || b["dashscope-11b"].TextOnly || !b["groq"].TextOnly {
		t.Error("TextOnly flags wrong")
	}
	// Builtins returns a fresh map each time.
	b["groq"] = Profile{}
	if Builtins()["groq"].Model == "" {
		t.Error("Builtins shares state between calls")
	}
}

func TestResolveProfile(t *testing.T) {
	p, err := ResolveProfile(nil, "groq", "", "", "meta-llama/llama-4-maverick-17b-128e-instruct")
	if err != nil {
		t.Fatal(err)
	}
	if p.Prices.InputPerMillion != Builtins()["groq-maverick"].Prices.InputPerMillion {
		t.Errorf("model switch kept Scout prices: %+v", p.Prices)
	}
	p, err = ResolveProfile(nil, "", "dashscope", "https://dashscope-intl.aliyuncs.com/", "llama3.2-11b-vision")
	if err != nil {
		t.Fatal(err)
	}
	if p.TextOnly || p.BaseURL != "https://dashscope-intl.aliyuncs.com" || p.Model != "llama3.2-11b-vision" {
		t.Errorf("dashscope 11b intl: %+v", p)
	}
	if _, err := ResolveProfile(nil, "", "openai", "", "m"); err == nil {
		t.Error("openai without base URL accepted")
	}
	if p, err := ResolveProfile(nil, "", "openai", "http://h/v1", "m"); err != nil || p.Model != "m" || p.JSONSchema {
		t.Errorf("generic openai: %+v %v", p, err)
	}
	if p, err := ResolveProfile(nil, "", "bedrock", "", ""); err != nil || p.Model != "us.meta.llama4-scout-17b-instruct-v1:0" {
		t.Errorf("bedrock default: %+v %v", p, err)
	}
	if _, err := ResolveProfile(nil, "", "", "", ""); err == nil {
		t.Error("nothing given accepted")
	}
}

func TestLoadProfiles(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := LoadProfiles(write(`
profiles:
  groq:
    prices: {currency: USD, input_per_million: 1.5, output_per_million: 2}
  mine:
    preset: vllm
    model: scout
    context_tokens: 65536
  fresh:
    provider: openai
    base_url: http://x/v1
    model: m
    image_formats: [image/png]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := m["groq"]
	if g.Prices.InputPerMillion != 1.5 || g.Model != Builtins()["groq"].Model || g.ContextTokens != 131072 {
		t.Errorf("groq override: %+v", g)
	}
	mine := m["mine"]
	if mine.Model != "scout" || mine.ContextTokens != 65536 || !mine.NoAPIKey || mine.BaseURL != "http://localhost:8000/v1" || mine.Preset != "vllm" {
		t.Errorf("mine: %+v", mine)
	}
	if f := m["fresh"]; f.Preset != "fresh" || len(f.ImageFormats) != 1 {
		t.Errorf("fresh: %+v", f)
	}
	if len(Builtins()["vllm"].ImageFormats) == 0 {
		t.Error("builtins changed by loading")
	}
	for _, bad := range []string{
		"profiles:\n  x:\n    provider: openai\n    modle: typo\n",
		"profiles:\n  x:\n    provider: carrier-pigeon\n",
		"profiles:\n  x:\n    preset: nope\n",
		"profiles:\n  x:\n    provider: openai\n    image_formats: [jpeg]\n",
		"profiles: [",
	} {
		if _, err := LoadProfiles(write(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if m, err := LoadProfiles(write("")); err != nil || len(m) != len(Builtins()) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := LoadProfiles(filepath.Join(dir, "absent.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

// The reseller's image price is per 1K images: one 1344×1008 photo costs
// 0.09 ₽, not the 171 ₽ a per-1K-image-tokens reading would give.
func TestImagePriceUnit(t *testing.T) {
	r := Builtins()["reseller"].Prices
	if r.ImageUnit != ImageUnitImages {
		t.Fatalf("reseller image unit %q, want %q", r.ImageUnit, ImageUnitImages)
	}
	tiles := EstimateImageTokens(1344, 1008)
	u := Usage{InputTokens: tiles + 500, ImageTokens: tiles, Images: 1, OutputTokens: 300}
	text := 500.0/1e6*18 + 300.0/1e6*59
	if got, want := r.Cost(u), text+91.14/1e3; abs(got-want) > 1e-9 {
		t.Errorf("per 1K images: cost %v, want %v", got, want)
	}
	r.ImageUnit = ImageUnitTokens
	if got, want := r.Cost(u), text+float64(tiles)/1e3*91.14; abs(got-want) > 1e-9 || got < 100 {
		t.Errorf("per 1K image tokens: cost %v, want %v", got, want)
	}
	// No separate image price: image tokens are input tokens.
	g := Builtins()["groq"].Prices
	if got, want := g.Cost(u), float64(tiles+500)/1e6*0.11+300.0/1e6*0.34; abs(got-want) > 1e-12 || g.ImageCost(u) != 0 {
		t.Errorf("groq cost %v, want %v", got, want)
	}
}

func abs(f float64) float64 { return max(f, -f) }

// A profile with an image price must say its unit; Qianfan's presets
// refuse answer caps below 2 and carry a note on their missing prices.
func TestProfileImageUnitAndQianfan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte("profiles:\n  r2:\n    preset: groq\n    prices: {currency: RUB, input_per_million: 18, image_per_thousand: 91.14}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfiles(path); err == nil || !strings.Contains(err.Error(), "image_unit") {
		t.Errorf("image price without unit: %v", err)
	}
	if err := os.WriteFile(path, []byte("profiles:\n  q:\n    preset: qianfan\n    image_detail: medium\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfiles(path); err == nil || !strings.Contains(err.Error(), "image_detail") {
		t.Errorf("bad image detail: %v", err)
	}
	for _, name := range []string{"qianfan", "qianfan-maverick"} {
		q := Builtins()[name]
		if q.MinOutputTokens != 2 || q.Prices.Priced() || !strings.Contains(q.Prices.Note, "gives no prices") {
			t.Errorf("%s: min %d, prices %+v", name, q.MinOutputTokens, q.Prices)
		}
	}
}
