package llm

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
	// Prices per unit, in Currency.
	Prices Prices `yaml:"prices" json:"prices"`
}

// Prices are per-token prices.
type Prices struct {
	// Currency is an ISO code, e.g. "USD" or "RUB".
	Currency string `yaml:"currency" json:"currency"`
	// InputPerMillion is the price of 1M input tokens.
	InputPerMillion float64 `yaml:"input_per_million" json:"input_per_million"`
	// OutputPerMillion is the price of 1M output tokens.
	OutputPerMillion float64 `yaml:"output_per_million" json:"output_per_million"`
	// ImagePerThousand is the price of 1K image tokens where a provider prices
	// them separately (zero: images count as input tokens).
	ImagePerThousand float64 `yaml:"image_per_thousand,omitempty" json:"image_per_thousand,omitempty"`
	// BatchDiscount is the fraction paid in batch mode (0.5 = half price; zero: no batch API).
	BatchDiscount float64 `yaml:"batch_discount,omitempty" json:"batch_discount,omitempty"`
}

// Cost returns the price of one call's usage under these prices.
func (p Prices) Cost(u Usage) float64 {
	text := u.InputTokens
	img := 0.0
	if p.ImagePerThousand > 0 {
		text -= u.ImageTokens
		img = float64(u.ImageTokens) / 1e3 * p.ImagePerThousand
	}
	return float64(text)/1e6*p.InputPerMillion + float64(u.OutputTokens)/1e6*p.OutputPerMillion + img
}
