package llm

import "time"

// Profile describes one provider + model: limits the workers size their
// chunks and images from, and prices the report computes cost from.
type Profile struct {
	// Provider is "openai", "dashscope", "bedrock" or "offline".
	Provider string `yaml:"provider" json:"provider"`
	// Preset is the name of the built-in preset this came from, if any.
	Preset string `yaml:"preset,omitempty" json:"preset,omitempty"`
	// Model is the provider's model id.
	Model string `yaml:"model" json:"model"`
	// BaseURL is the provider endpoint (empty: the provider's default).
	BaseURL string `yaml:"base_url,omitempty" json:"base_url,omitempty"`
	// ContextTokens is the context window in tokens.
	ContextTokens int `yaml:"context_tokens" json:"context_tokens"`
	// MaxOutputTokens is the largest answer the model may give.
	MaxOutputTokens int `yaml:"max_output_tokens" json:"max_output_tokens"`
	// MaxImages is how many images one request may carry.
	MaxImages int `yaml:"max_images" json:"max_images"`
	// MaxImageBytes is the largest encoded image accepted.
	MaxImageBytes int `yaml:"max_image_bytes" json:"max_image_bytes"`
	// MaxImagePixels is the largest image (width*height) accepted.
	MaxImagePixels int `yaml:"max_image_pixels" json:"max_image_pixels"`
	// ImageFormats lists accepted MIME types.
	ImageFormats []string `yaml:"image_formats" json:"image_formats"`
	// TextOnly is false for models that refuse requests without an image.
	TextOnly bool `yaml:"text_only" json:"text_only"`
	// JSONSchema is true when the model supports response_format json_schema.
	JSONSchema bool `yaml:"json_schema" json:"json_schema"`
	// JSONObject is true when it supports response_format json_object.
	JSONObject bool `yaml:"json_object" json:"json_object"`
	// RPM and TPM are the provider's known requests and tokens per minute
	// for this model: the defaults of --rpm and --tpm. Zero: none known.
	RPM int `yaml:"rpm,omitempty" json:"rpm,omitempty"`
	TPM int `yaml:"tpm,omitempty" json:"tpm,omitempty"`
	// MinOutputTokens is the smallest answer cap the service accepts
	// (Qianfan v2: max_completion_tokens in [2, 8192]); a request or a
	// --max-output-tokens below it is refused. Default 0: no lower bound.
	MinOutputTokens int `yaml:"min_output_tokens,omitempty" json:"min_output_tokens,omitempty"`
	// ImageDetail is the OpenAI-style image detail sent with every image
	// that sets none: "low", "high" or "auto" (Qianfan v2 documents low and
	// high). Default "": the field is not sent.
	ImageDetail string `yaml:"image_detail,omitempty" json:"image_detail,omitempty"`
	// ImageTransport is how images reach the provider: ImageInline (also
	// the default ""; base64 data URIs in the request) or ImageURL (the
	// prepared image is put in the output's work area and the provider
	// fetches it through a presigned GET URL; dashscope only, its presets'
	// default). With ImageURL an image whose output store cannot presign
	// URLs (a local folder) goes inline, unless ImageURLRequired.
	ImageTransport string `yaml:"image_transport,omitempty" json:"image_transport,omitempty"`
	// ImageURLRequired is set by --image-transport url, never by a profile:
	// an image that cannot go by URL fails instead of going inline.
	ImageURLRequired bool `yaml:"-" json:"-"`
	// LegacyMaxTokens makes OpenAI-compatible clients send max_tokens instead
	// of max_completion_tokens (default false: max_completion_tokens, which
	// Qianfan requires).
	LegacyMaxTokens bool `yaml:"legacy_max_tokens,omitempty" json:"legacy_max_tokens,omitempty"`
	// NoAPIKey is true for servers that need no key (vLLM, Ollama). Default
	// false: a key is required.
	NoAPIKey bool `yaml:"no_api_key,omitempty" json:"no_api_key,omitempty"`
	// Region is the cloud region (Bedrock; empty: the AWS default chain's).
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// BatchAPI names the provider's batch API for batch mode (package
	// worker/llm/batchapi): BatchOpenAI (OpenAI-style /v1/files and
	// /v1/batches), BatchBedrock (Bedrock batch inference) or "" (default:
	// none; batch mode is not offered).
	BatchAPI string `yaml:"batch_api,omitempty" json:"batch_api,omitempty"`
	// FallbackAfter, FallbackMaxWait and FallbackCoolDown are this
	// provider's FallbackPolicy as a fallback chain's primary (Failures,
	// MaxWait, CoolDown); --fallback-after, --fallback-max-wait and
	// --fallback-cool-down override them. Zero: the policy's defaults (3,
	// 2 minutes, 5 minutes).
	FallbackAfter    int           `yaml:"fallback_after,omitempty" json:"fallback_after,omitempty"`
	FallbackMaxWait  time.Duration `yaml:"fallback_max_wait,omitempty" json:"fallback_max_wait,omitempty"`
	FallbackCoolDown time.Duration `yaml:"fallback_cool_down,omitempty" json:"fallback_cool_down,omitempty"`
	// Prices per unit, in Currency.
	Prices Prices `yaml:"prices" json:"prices"`
}

// FallbackPolicy is the policy of a fallback chain whose primary is p
// (zero fields: the defaults).
func (p Profile) FallbackPolicy() FallbackPolicy {
	return FallbackPolicy{Failures: p.FallbackAfter, MaxWait: p.FallbackMaxWait, CoolDown: p.FallbackCoolDown}
}

// Values of Profile.ImageTransport.
const (
	// ImageInline sends images inside the request (base64 data URIs).
	ImageInline = "inline"
	// ImageURL sends presigned GET URLs of the prepared images.
	ImageURL = "url"
)

// ImageTransportOf is p's image transport, ImageInline when unset.
func ImageTransportOf(p Profile) string {
	if p.ImageTransport == "" {
		return ImageInline
	}
	return p.ImageTransport
}

// Units of Prices.ImagePerThousand.
const (
	// ImageUnitImages: the price of 1,000 images (OpenRouter's listing).
	ImageUnitImages = "images"
	// ImageUnitTokens: the price of 1,000 image tokens.
	ImageUnitTokens = "image_tokens"
)

// Prices are per-token prices.
type Prices struct {
	// Currency is an ISO code, e.g. "USD" or "RUB".
	Currency string `yaml:"currency" json:"currency"`
	// Note says where the prices come from, or why there are none (shown
	// by plan for an unpriced profile). Default "".
	Note string `yaml:"note,omitempty" json:"note,omitempty"`
	// InputPerMillion is the price of 1M input tokens.
	InputPerMillion float64 `yaml:"input_per_million" json:"input_per_million"`
	// OutputPerMillion is the price of 1M output tokens.
	OutputPerMillion float64 `yaml:"output_per_million" json:"output_per_million"`
	// ImagePerThousand is the price of 1K images or 1K image tokens (as
	// ImageUnit says) where a provider prices images separately; the image
	// tokens then are not also billed as input tokens. Zero: images count
	// as input tokens.
	ImagePerThousand float64 `yaml:"image_per_thousand,omitempty" json:"image_per_thousand,omitempty"`
	// ImageUnit is what ImagePerThousand is the price of 1,000 of:
	// ImageUnitImages or ImageUnitTokens. Required with ImagePerThousand.
	ImageUnit string `yaml:"image_unit,omitempty" json:"image_unit,omitempty"`
	// BatchDiscount is the fraction paid in batch mode (0.5 = half price; zero: no batch API).
	BatchDiscount float64 `yaml:"batch_discount,omitempty" json:"batch_discount,omitempty"`
}

// Cost returns the price of one call's usage under these prices.
func (p Prices) Cost(u Usage) float64 {
	return p.TextCost(u) + p.ImageCost(u)
}

// TextCost is the part of Cost that is not the images' own price.
func (p Prices) TextCost(u Usage) float64 {
	text := u.InputTokens
	if p.ImagePerThousand > 0 {
		text -= u.ImageTokens
	}
	return float64(text)/1e6*p.InputPerMillion + float64(u.OutputTokens)/1e6*p.OutputPerMillion
}

// ImageCost is the images' own price in Cost (0 when images count as
// input tokens).
func (p Prices) ImageCost(u Usage) float64 {
	switch {
	case p.ImagePerThousand == 0:
		return 0
	case p.ImageUnit == ImageUnitImages:
		return float64(u.Images) / 1e3 * p.ImagePerThousand
	default:
		return float64(u.ImageTokens) / 1e3 * p.ImagePerThousand
	}
}

// Priced reports whether any price is set.
func (p Prices) Priced() bool {
	return p.InputPerMillion > 0 || p.OutputPerMillion > 0 || p.ImagePerThousand > 0
}
