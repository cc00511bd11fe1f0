// Package llm is the one small interface workers use to reach Llama 4, and
// the providers behind it (OpenAI-compatible chat completions, DashScope's
// native multimodal API, AWS Bedrock Converse, and the offline provider that
// needs no service at all).
//
// It knows nothing about jobs, batches or storage: a Request goes in, a
// Response comes out, and errors say by their type whether to retry.
package llm

import (
	"context"
	"encoding/json"
	"time"
)

// Request is one model call.
type Request struct {
	// System is the system prompt.
	System string
	// Parts is the user message: text and images, in order.
	Parts []Part
	// MaxOutputTokens caps the answer. Zero means the profile's default.
	MaxOutputTokens int
	// Temperature, when non-nil, sets sampling temperature.
	Temperature *float64
	// Schema, when non-nil, asks for a JSON answer following it.
	Schema *Schema
}

// Part is one piece of the user message: exactly one of Text or Image is set.
type Part struct {
	Text  string
	Image *Image
	// Document marks a text part that is document content (data, not
	// instructions). Providers send it as ordinary text; the offline provider
	// summarises only such parts.
	Document bool
}

// Image is an encoded image ready to send.
type Image struct {
	// MIME is the declared type, e.g. "image/jpeg".
	MIME string
	// Data is the encoded bytes.
	Data []byte
	// Width and Height are the pixel dimensions of Data.
	Width, Height int
	// Detail is the optional OpenAI-style detail hint ("low", "high", "auto").
	Detail string
	// Presign, when set, returns a URL the same bytes (Data) can be
	// fetched from, valid for at least ttl (see Profile.ImageTransport).
	// Providers that take images by URL (dashscope) call it right before
	// each request and send the URL instead of Data; the others send Data.
	// The URL carries a signature: a secret, never logged or kept.
	Presign func(ctx context.Context, ttl time.Duration) (string, error)
}

// Schema is a JSON schema for structured output.
type Schema struct {
	// Name identifies the schema (e.g. "caption", "contract_digest").
	Name string
	// JSON is the schema document.
	JSON json.RawMessage
}

// Usage is token accounting for one call.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	// ImageTokens is the part of InputTokens spent on images, where known.
	ImageTokens int `json:"image_tokens,omitempty"`
	// Images is how many images the call sent.
	Images int `json:"images,omitempty"`
	// Estimated is true when the provider did not report usage and the
	// numbers were estimated from text length and image size.
	Estimated bool `json:"estimated,omitempty"`
}

// Response is a model's answer.
type Response struct {
	Text         string
	FinishReason string
	Model        string
	Usage        Usage
	// Provider is, for an answer of a fallback chain (NewFallback), the
	// preset or provider that gave it; empty: the client's own.
	Provider string `json:",omitempty"`
	// Prices are, for an answer of a fallback chain's later provider, that
	// provider's prices (nil: the client's profile's).
	Prices *Prices `json:",omitempty"`
	// Batch is true for an answer that came through the provider's batch
	// API (billed at the profile's batch price).
	Batch bool `json:",omitempty"`
	// Limits is what the provider's answer said of its rate limits (nil:
	// nothing); ratelimit.Learn shares it between workers.
	Limits *RateLimits `json:"-"`
}

// Client is what workers call.
type Client interface {
	// Complete sends one request and returns the answer, or an error whose
	// type (see errors.go) says whether to retry.
	Complete(ctx context.Context, req Request) (Response, error)
	// Profile describes the model behind the client: its limits and prices.
	Profile() Profile
}
