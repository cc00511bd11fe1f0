package llm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Provider names (Profile.Provider).
const (
	ProviderOpenAI    = "openai"
	ProviderDashScope = "dashscope"
	ProviderBedrock   = "bedrock"
	ProviderOffline   = "offline"
)

// Batch APIs (Profile.BatchAPI).
const (
	BatchOpenAI  = "openai"
	BatchBedrock = "bedrock"
)

const (
	mib = 1 << 20
	// OpenAI-style image types most services take as data URLs.
	mimeJPEG = "image/jpeg"
	mimePNG  = "image/png"
	mimeWEBP = "image/webp"
	mimeGIF  = "image/gif"
	mimeBMP  = "image/bmp"
)

// Builtins returns the built-in presets, keyed by name. Each call returns a
// fresh map the caller may change.
//
// Sources: qianfan, reseller and dashscope* follow the reference pages in
// shared/reference/providers (file named per preset). Everything marked
// "best-known" is the provider's public documentation or price list as
// remembered when this was written, not verified here: override it with a
// profiles YAML file when it matters (e.g. for cost reports).
func Builtins() map[string]Profile {
	llama4 := func(p Profile) Profile {
		if p.Provider == "" {
			p.Provider = ProviderOpenAI
		}
		p.TextOnly = true
		return p
	}
	m := map[string]Profile{
		// Meta's Llama API, OpenAI-compatible endpoint. Best-known: 128K
		// context on the API, json_schema response_format, images up to
		// 9 per request; free preview (prices 0).
		"llama-api": llama4(Profile{
			BaseURL: "https://api.llama.com/compat/v1", Model: "Llama-4-Scout-17B-16E-Instruct-FP8",
			ContextTokens: 128000, MaxOutputTokens: 4096, MaxImages: 9, MaxImageBytes: 25 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONSchema:   true, JSONObject: false,
			Prices: Prices{Currency: "USD"},
		}),
		"llama-api-maverick": llama4(Profile{
			BaseURL: "https://api.llama.com/compat/v1", Model: "Llama-4-Maverick-17B-128E-Instruct-FP8",
			ContextTokens: 128000, MaxOutputTokens: 4096, MaxImages: 9, MaxImageBytes: 25 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONSchema:   true,
			Prices:       Prices{Currency: "USD"},
		}),
		// Groq. Best-known: 131072 context, 8192 output, 5 images per
		// request, 4 MB per base64 image, 33 megapixels; $0.11/$0.34 per 1M
		// (Scout), $0.20/$0.60 (Maverick); batch API at 50% (OpenAI-style
		// /openai/v1/files and /batches, purpose "batch", .jsonl files up to
		// 100 MB per Groq's SDK documentation).
		"groq": llama4(Profile{
			BaseURL: "https://api.groq.com/openai/v1", Model: "meta-llama/llama-4-scout-17b-16e-instruct",
			ContextTokens: 131072, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 4 * mib, MaxImagePixels: 33177600,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONSchema:   true, JSONObject: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.11, OutputPerMillion: 0.34, BatchDiscount: 0.5},
			BatchAPI: BatchOpenAI,
		}),
		"groq-maverick": llama4(Profile{
			BaseURL: "https://api.groq.com/openai/v1", Model: "meta-llama/llama-4-maverick-17b-128e-instruct",
			ContextTokens: 131072, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 4 * mib, MaxImagePixels: 33177600,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONSchema:   true, JSONObject: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.20, OutputPerMillion: 0.60, BatchDiscount: 0.5},
			BatchAPI: BatchOpenAI,
		}),
		// Together AI. Best-known: 1M context served (Scout/Maverick),
		// json_schema, $0.18/$0.59 (Scout), $0.27/$0.85 (Maverick); batch 50%
		// (OpenAI-style /v1/batches, up to 50,000 requests and 100 MB a file,
		// file purpose "batch-api").
		"together": llama4(Profile{
			BaseURL: "https://api.together.xyz/v1", Model: "meta-llama/Llama-4-Scout-17B-16E-Instruct",
			ContextTokens: 1048576, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP},
			JSONSchema:   true, JSONObject: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.18, OutputPerMillion: 0.59, BatchDiscount: 0.5},
			BatchAPI: BatchOpenAI,
		}),
		"together-maverick": llama4(Profile{
			BaseURL: "https://api.together.xyz/v1", Model: "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
			ContextTokens: 1048576, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP},
			JSONSchema:   true, JSONObject: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.27, OutputPerMillion: 0.85, BatchDiscount: 0.5},
			BatchAPI: BatchOpenAI,
		}),
		// OpenRouter. Context 327680 ("328K" on the reseller card, which
		// mirrors OpenRouter's listing); prices best-known: $0.08/$0.30
		// (Scout), $0.15/$0.60 (Maverick). Structured output depends on the
		// routed provider, so only json_object is assumed.
		"openrouter": llama4(Profile{
			BaseURL: "https://openrouter.ai/api/v1", Model: "meta-llama/llama-4-scout",
			ContextTokens: 327680, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONObject:   true,
			Prices:       Prices{Currency: "USD", InputPerMillion: 0.08, OutputPerMillion: 0.30},
		}),
		"openrouter-maverick": llama4(Profile{
			BaseURL: "https://openrouter.ai/api/v1", Model: "meta-llama/llama-4-maverick",
			ContextTokens: 1048576, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONObject:   true,
			Prices:       Prices{Currency: "USD", InputPerMillion: 0.15, OutputPerMillion: 0.60},
		}),
		// Baidu Qianfan v2 (qianfan-v2-multimodal-chat-api.zh.txt):
		// max_completion_tokens in [2,8192] (MinOutputTokens refuses less),
		// base64 images JPG/JPEG/PNG/BMP, ≤10 MB each, image count bounded
		// only by tokens, image_url.detail "low" or "high" (ImageDetail;
		// unset here: the service's default). The page gives no context
		// size, response_format support or prices: context is a
		// conservative guess, structured output falls back to
		// instructions, and the presets are unpriced (Prices.Note says so
		// in every plan; set prices in a profiles YAML file).
		"qianfan": llama4(Profile{
			BaseURL: "https://qianfan.baidubce.com/v2", Model: "llama-4-scout-17b-16e-instruct",
			ContextTokens: 65536, MaxOutputTokens: 8192, MinOutputTokens: 2, MaxImageBytes: 10 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeBMP},
			Prices:       Prices{Currency: "CNY", Note: qianfanPriceNote},
		}),
		"qianfan-maverick": llama4(Profile{
			BaseURL: "https://qianfan.baidubce.com/v2", Model: "llama-4-maverick-17b-128e-instruct",
			ContextTokens: 65536, MaxOutputTokens: 8192, MinOutputTokens: 2, MaxImageBytes: 10 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeBMP},
			Prices:       Prices{Currency: "CNY", Note: qianfanPriceNote},
		}),
		// OpenAI-style reseller (llama4-scout-reseller-card.ru.txt):
		// base https://routerai.ru/api/v1, model meta-llama/llama-4-scout,
		// 328K context, text+image in; 18 ₽ / 59 ₽ per 1M input/output
		// tokens, and "91,14 ₽ / 1K токенов" for incoming images.
		//
		// That image price is per 1K images, not per 1K image tokens
		// (ImageUnitImages): read as tokens, one 1344×1008 photo would cost
		// about 171 ₽, 19,000 times its text. The card matches OpenRouter's
		// listing of Llama 4 Scout (328K context, 8K output, $0.10/$0.30
		// per 1M), and OpenRouter prices images per 1,000 images: $0.5013
		// per 1K input images at 182 ₽ to the dollar is 91.14 ₽, the same
		// markup as 18 ₽ for $0.10 (issue 19).
		//
		// The card says nothing of output cap, image limits or
		// response_format: those are guesses (instructions fallback for
		// JSON).
		"reseller": llama4(Profile{
			BaseURL: "https://routerai.ru/api/v1", Model: "meta-llama/llama-4-scout",
			ContextTokens: 327680, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP},
			Prices: Prices{Currency: "RUB", InputPerMillion: 18, OutputPerMillion: 59,
				ImagePerThousand: 91.14, ImageUnit: ImageUnitImages},
		}),
		// Self-hosted vLLM and Ollama: base URL only; the served model name
		// is the operator's choice and must be given. No key, no price.
		// Limits are what a default Llama 4 Scout deployment allows
		// (vLLM: --max-model-len commonly set to 128K; json_schema via
		// guided decoding).
		"vllm": llama4(Profile{
			BaseURL:       "http://localhost:8000/v1",
			ContextTokens: 131072, MaxOutputTokens: 8192, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF},
			JSONSchema:   true, JSONObject: true, NoAPIKey: true,
		}),
		"ollama": llama4(Profile{
			BaseURL:       "http://localhost:11434/v1",
			ContextTokens: 32768, MaxOutputTokens: 4096, MaxImages: 5, MaxImageBytes: 20 * mib,
			ImageFormats: []string{mimeJPEG, mimePNG},
			JSONSchema:   true, JSONObject: true, NoAPIKey: true,
		}),
		// AWS Bedrock Converse, cross-region inference profiles in us-east-1.
		// Best-known: Scout 3.5M / Maverick 1M context, 8192 output,
		// Converse image blocks ≤3.75 MB, ≤8000 px a side, 20 images;
		// $0.17/$0.66 (Scout), $0.24/$0.97 (Maverick) per 1M; batch 50%
		// (batch inference jobs, Converse record format).
		// Converse has no response_format: instructions fallback.
		"bedrock-scout": {
			Provider: ProviderBedrock, Model: "us.meta.llama4-scout-17b-instruct-v1:0", Region: "us-east-1",
			ContextTokens: 3500000, MaxOutputTokens: 8192, MaxImages: 20, MaxImageBytes: 3932160, MaxImagePixels: 8000 * 8000,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF}, TextOnly: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.17, OutputPerMillion: 0.66, BatchDiscount: 0.5},
			BatchAPI: BatchBedrock,
		},
		"bedrock-maverick": {
			Provider: ProviderBedrock, Model: "us.meta.llama4-maverick-17b-instruct-v1:0", Region: "us-east-1",
			ContextTokens: 1000000, MaxOutputTokens: 8192, MaxImages: 20, MaxImageBytes: 3932160, MaxImagePixels: 8000 * 8000,
			ImageFormats: []string{mimeJPEG, mimePNG, mimeWEBP, mimeGIF}, TextOnly: true,
			Prices:   Prices{Currency: "USD", InputPerMillion: 0.24, OutputPerMillion: 0.97, BatchDiscount: 0.5},
			BatchAPI: BatchBedrock,
		},
	}
	// DashScope native API, Llama 3.2 vision
	// (dashscope-llama-vision-multimodal-api.zh.txt): 8192 context, free
	// trial only (prices 0), no text-only input, one image per message
	// ("不支持传入图片列表"), ≤10 MB images, max_new_tokens defaults to 512
	// (the output cap here is our choice, leaving room for the prompt).
	// Its examples pass images as URLs and it says local files are not
	// supported ("不支持本地文件传入"): images go by presigned URL when the
	// output store can presign them (S3), else inline.
	dash := func(base, model string) Profile {
		return Profile{
			Provider: ProviderDashScope, BaseURL: base, Model: model,
			ContextTokens: 8192, MaxOutputTokens: 2048, MaxImages: 1, MaxImageBytes: 10 * mib,
			ImageFormats:   []string{mimeJPEG, mimePNG, mimeBMP, mimeWEBP, "image/tiff"},
			TextOnly:       false,
			ImageTransport: ImageURL,
			Prices:         Prices{Currency: "CNY"},
		}
	}
	m["dashscope"] = dash("https://dashscope.aliyuncs.com", "llama3.2-90b-vision-instruct")
	m["dashscope-intl"] = dash("https://dashscope-intl.aliyuncs.com", "llama3.2-90b-vision-instruct")
	m["dashscope-11b"] = dash("https://dashscope.aliyuncs.com", "llama3.2-11b-vision")
	for name, p := range m {
		p.Preset = name
		m[name] = p
	}
	return m
}

// qianfanPriceNote is the qianfan presets' Prices.Note.
const qianfanPriceNote = "the Qianfan v2 reference page (qianfan-v2-multimodal-chat-api.zh.txt) gives no prices for Llama 4: " +
	"costs are not computed and money budgets cannot be checked; set prices in a --profiles YAML file"

// defaultPreset is the preset a bare provider name starts from.
var defaultPreset = map[string]string{
	ProviderDashScope: "dashscope",
	ProviderBedrock:   "bedrock-scout",
}

// genericOpenAI is the starting point for an OpenAI-compatible endpoint
// given only by URL: conservative limits, no structured output.
func genericOpenAI() Profile {
	return Profile{
		Provider: ProviderOpenAI, ContextTokens: 32768, MaxOutputTokens: 4096, MaxImages: 1, MaxImageBytes: 10 * mib,
		ImageFormats: []string{mimeJPEG, mimePNG}, TextOnly: true,
	}
}

// LoadProfiles returns the built-in presets with a YAML file's profiles
// merged over them. An empty path gives the builtins. The file holds
//
//	profiles:
//	  groq:                 # an existing name: listed fields override it
//	    prices: {currency: USD, input_per_million: 0.1, output_per_million: 0.3}
//	  my-vllm:              # a new name; "preset" names the profile it starts from
//	    preset: vllm
//	    model: llama4-scout
//
// Field names are Profile's yaml tags; unknown fields are an error.
func LoadProfiles(path string) (map[string]Profile, error) {
	out := Builtins()
	if path == "" {
		return out, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profiles: %w", err)
	}
	// First pass: strict decode, to report unknown fields and bad types.
	var strict struct {
		Profiles map[string]Profile `yaml:"profiles"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse profiles %s: %w", path, err)
	}
	// Second pass: decode each node over its base so unlisted fields keep
	// the base's values.
	var doc struct {
		Profiles map[string]yaml.Node `yaml:"profiles"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse profiles %s: %w", path, err)
	}
	names := make([]string, 0, len(doc.Profiles))
	for name := range doc.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		node := doc.Profiles[name]
		base, ok := out[name]
		if !ok {
			from := strict.Profiles[name].Preset
			if from != "" {
				b, ok := out[from]
				if !ok {
					return nil, fmt.Errorf("profiles %s: %s: preset %q is not defined", path, name, from)
				}
				base = b
			}
		}
		base.ImageFormats = slices.Clone(base.ImageFormats)
		if err := node.Decode(&base); err != nil {
			return nil, fmt.Errorf("profiles %s: %s: %w", path, name, err)
		}
		if base.Preset == "" {
			base.Preset = name
		}
		if err := validateProfile(base); err != nil {
			return nil, fmt.Errorf("profiles %s: %s: %w", path, name, err)
		}
		out[name] = base
	}
	return out, nil
}

func validateProfile(p Profile) error {
	switch p.Provider {
	case ProviderOpenAI, ProviderDashScope, ProviderBedrock, ProviderOffline:
	case "":
		return errors.New("provider is not set")
	default:
		return fmt.Errorf("unknown provider %q (want openai, dashscope, bedrock or offline)", p.Provider)
	}
	switch p.BatchAPI {
	case "", BatchOpenAI, BatchBedrock:
	default:
		return fmt.Errorf("unknown batch API %q (want openai, bedrock or empty)", p.BatchAPI)
	}
	if (p.BatchAPI == BatchOpenAI && p.Provider != ProviderOpenAI) || (p.BatchAPI == BatchBedrock && p.Provider != ProviderBedrock) {
		return fmt.Errorf("batch API %q does not go with provider %s", p.BatchAPI, p.Provider)
	}
	if p.ContextTokens < 0 || p.MaxOutputTokens < 0 || p.MaxImages < 0 || p.MaxImageBytes < 0 || p.MaxImagePixels < 0 {
		return errors.New("limits must not be negative")
	}
	if p.FallbackAfter < 0 || p.FallbackMaxWait < 0 || p.FallbackCoolDown < 0 {
		return errors.New("fallback_after, fallback_max_wait and fallback_cool_down must not be negative")
	}
	if p.MinOutputTokens < 0 || (p.MaxOutputTokens > 0 && p.MinOutputTokens > p.MaxOutputTokens) {
		return fmt.Errorf("min_output_tokens %d is outside [0, max_output_tokens]", p.MinOutputTokens)
	}
	switch p.ImageDetail {
	case "", "low", "high", "auto":
	default:
		return fmt.Errorf("image_detail %q: want low, high or auto", p.ImageDetail)
	}
	switch p.ImageTransport {
	case "", ImageInline:
	case ImageURL:
		if p.Provider != ProviderDashScope {
			return fmt.Errorf("image_transport url: only the dashscope provider fetches images by URL; %s takes them inline", p.Provider)
		}
	default:
		return fmt.Errorf("image_transport %q: want inline or url", p.ImageTransport)
	}
	switch {
	case p.Prices.ImagePerThousand < 0 || p.Prices.InputPerMillion < 0 || p.Prices.OutputPerMillion < 0:
		return errors.New("prices must not be negative")
	case p.Prices.ImagePerThousand > 0 && p.Prices.ImageUnit != ImageUnitImages && p.Prices.ImageUnit != ImageUnitTokens:
		return fmt.Errorf("prices: image_per_thousand needs image_unit %q (per 1K images) or %q (per 1K image tokens)", ImageUnitImages, ImageUnitTokens)
	}
	for _, f := range p.ImageFormats {
		if !strings.HasPrefix(f, "image/") {
			return fmt.Errorf("image format %q is not an image MIME type", f)
		}
	}
	return nil
}

// ResolveProfile picks the profile a client will use:
//
//   - preset, when set, names a profile in profiles (nil: the builtins);
//     provider, when also set, must match it;
//   - with no preset, provider picks its default ("dashscope" → dashscope,
//     "bedrock" → bedrock-scout, "openai" → conservative generic limits,
//     which need a base URL);
//   - baseURL and model, when set, override the profile's. A model that
//     another profile of the same provider (and base URL, for openai)
//     describes takes that profile's limits and prices.
//
// The result has a provider, and for openai a base URL; for openai and
// dashscope a model.
func ResolveProfile(profiles map[string]Profile, preset, provider, baseURL, model string) (Profile, error) {
	if profiles == nil {
		profiles = Builtins()
	}
	var p Profile
	switch {
	case preset != "":
		var ok bool
		p, ok = profiles[preset]
		if !ok {
			return Profile{}, fmt.Errorf("unknown preset %q (known: %s)", preset, strings.Join(sortedNames(profiles), ", "))
		}
		if provider != "" && provider != p.Provider {
			return Profile{}, fmt.Errorf("preset %q is for provider %s, not %s", preset, p.Provider, provider)
		}
	case provider == ProviderOpenAI:
		p = genericOpenAI()
	case provider == ProviderOffline:
		p = Profile{Provider: ProviderOffline, Model: ProviderOffline, TextOnly: true} // the offline client's Model
	case provider != "":
		name, ok := defaultPreset[provider]
		if !ok {
			return Profile{}, fmt.Errorf("unknown provider %q (want openai, dashscope, bedrock or offline)", provider)
		}
		p = profiles[name]
	default:
		return Profile{}, errors.New("neither preset nor provider given")
	}
	if baseURL != "" {
		p.BaseURL = strings.TrimRight(baseURL, "/")
	}
	if model != "" && model != p.Model {
		p.Model = model
		for _, name := range sortedNames(profiles) {
			q := profiles[name]
			if q.Provider == p.Provider && q.Model == model && (p.Provider != ProviderOpenAI || sameBase(q.BaseURL, p.BaseURL)) {
				q.BaseURL, q.Region = p.BaseURL, firstNonEmpty(p.Region, q.Region)
				p = q
				break
			}
		}
	}
	if p.Provider == ProviderOpenAI && p.BaseURL == "" {
		return Profile{}, errors.New("openai provider needs a base URL (preset or base URL)")
	}
	if (p.Provider == ProviderOpenAI || p.Provider == ProviderDashScope || p.Provider == ProviderBedrock) && p.Model == "" {
		name := preset
		if name == "" {
			name = p.Provider
		}
		return Profile{}, fmt.Errorf("%s needs a model name (the preset sets none)", name)
	}
	p.ImageFormats = slices.Clone(p.ImageFormats)
	return p, nil
}

func sameBase(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortedNames(m map[string]Profile) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
