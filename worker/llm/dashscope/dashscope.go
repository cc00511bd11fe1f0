package dashscope

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
)

const (
	// DefaultBaseURL is the mainland endpoint.
	DefaultBaseURL = "https://dashscope.aliyuncs.com"
	// IntlBaseURL is the international (Singapore) endpoint.
	IntlBaseURL = "https://dashscope-intl.aliyuncs.com"
	// Path is the multimodal generation endpoint below the base URL.
	Path = "/api/v1/services/aigc/multimodal-generation/generation"
	// DefaultTimeout bounds one call when Options.Timeout is zero.
	DefaultTimeout = 2 * time.Minute
	// maxBody bounds how much of an answer is read.
	maxBody = 8 << 20
	// MinImageURLLifetime is the shortest lifetime of a presigned image URL
	// (see ImageURLLifetime).
	MinImageURLLifetime = 10 * time.Minute
	// imageFetchMargin is added to the call's timeout: the service may
	// fetch the image at any moment of the call, and clocks differ.
	imageFetchMargin = 2 * time.Minute
)

// ImageURLLifetime is how long a presigned image URL must stay valid for
// one call bounded by timeout: timeout + 2 minutes, at least
// MinImageURLLifetime. One call is one attempt: the client never retries,
// and every call (the worker's retries, a second request for valid JSON,
// the smaller image after "too large") presigns a fresh URL right before
// it is sent, so no lifetime has to cover a backoff or a rate-limit wait.
func ImageURLLifetime(timeout time.Duration) time.Duration {
	return max(MinImageURLLifetime, timeout+imageFetchMargin)
}

// Options configure a Client.
type Options struct {
	// Profile gives the model, limits and base URL (empty: DefaultBaseURL).
	Profile llm.Profile
	// APIKey is the DashScope key, sent as a bearer token. Required.
	APIKey string
	// ExtraHeaders are added to every request. Default none.
	ExtraHeaders map[string]string
	// HTTPClient carries the requests. Default: a fresh http.Client.
	HTTPClient *http.Client
	// Timeout bounds one call. Default DefaultTimeout.
	Timeout time.Duration
	// Temperature is used when a Request sets none. Default nil: the
	// service's default (0.8).
	Temperature *float64
	// TopP and TopK are sent when set. Default: the service's.
	TopP *float64
	TopK *int
	// ImageURLLifetime is how long the presigned URL of an image that
	// goes by URL (llm.Image.Presign) is valid. Default
	// ImageURLLifetime(Timeout).
	ImageURLLifetime time.Duration
}

// Client is an llm.Client for one DashScope model. It is safe for concurrent
// use.
type Client struct {
	o    Options
	url  string
	http *http.Client
}

var _ llm.Client = (*Client)(nil)

// New returns a Client. It makes no network call.
func New(o Options) (*Client, error) {
	if o.Profile.Model == "" {
		return nil, errors.New("dashscope: model is required")
	}
	if strings.TrimSpace(o.APIKey) == "" {
		return nil, errors.New("dashscope: API key is required")
	}
	base := strings.TrimRight(o.Profile.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ImageURLLifetime <= 0 {
		o.ImageURLLifetime = ImageURLLifetime(o.Timeout)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{o: o, url: base + Path, http: hc}, nil
}

// Profile returns the profile the client was made with.
func (c *Client) Profile() llm.Profile { return c.o.Profile }

// content is one item of a message's content: exactly one field is set.
type content struct {
	Image string `json:"image,omitempty"`
	Text  string `json:"text,omitempty"`
}

type message struct {
	Role    string    `json:"role"`
	Content []content `json:"content"`
}

// Body is the request body.
type Body struct {
	Model string `json:"model"`
	Input struct {
		Messages []message `json:"messages"`
	} `json:"input"`
	Parameters Parameters `json:"parameters"`
}

// Parameters are the sampling parameters (the "parameters" object).
type Parameters struct {
	MaxNewTokens int      `json:"max_new_tokens,omitempty"`
	Temperature  *float64 `json:"temperature,omitempty"`
	TopP         *float64 `json:"top_p,omitempty"`
	TopK         *int     `json:"top_k,omitempty"`
}

type answer struct {
	Output struct {
		Text    string `json:"text"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Role    string    `json:"role"`
				Content []content `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	} `json:"output"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
		ImageTokens  int `json:"image_tokens"`
	} `json:"usage"`
	RequestID string `json:"request_id"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// NewBody builds the request body for req. An image with Presign goes as
// the URL it returns, valid for Options.ImageURLLifetime (the reference
// page passes images as URLs); the others as base64 data URIs. It also
// returns the URLs, so that errors can hide their signatures. The API has
// no structured output: a schema becomes a system-prompt instruction.
func (c *Client) NewBody(ctx context.Context, req llm.Request) (Body, []string, error) {
	var b Body
	var urls []string
	b.Model = c.o.Profile.Model
	if sys := llm.WithInstruction(req.System, req.Schema); sys != "" {
		b.Input.Messages = append(b.Input.Messages, message{Role: "system", Content: []content{{Text: sys}}})
	}
	user := message{Role: "user"}
	// Images first, then text, as in the reference examples.
	for _, p := range req.Parts {
		if p.Image == nil {
			continue
		}
		if p.Image.Presign != nil {
			u, err := p.Image.Presign(ctx, c.o.ImageURLLifetime)
			if err != nil {
				return b, urls, &llm.Error{Provider: llm.ProviderDashScope, Kind: llm.Retryable, Code: "presign",
					Err: fmt.Errorf("presign the image's URL: %w", err)}
			}
			urls = append(urls, u)
			user.Content = append(user.Content, content{Image: u})
			continue
		}
		mime := p.Image.MIME
		if mime == "" {
			mime = "image/jpeg"
		}
		user.Content = append(user.Content, content{Image: "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(p.Image.Data)})
	}
	for _, p := range req.Parts {
		if p.Image == nil && p.Text != "" {
			user.Content = append(user.Content, content{Text: p.Text})
		}
	}
	b.Input.Messages = append(b.Input.Messages, user)
	b.Parameters.MaxNewTokens = llm.OutputTokens(c.o.Profile, req)
	b.Parameters.Temperature = req.Temperature
	if b.Parameters.Temperature == nil {
		b.Parameters.Temperature = c.o.Temperature
	}
	b.Parameters.TopP, b.Parameters.TopK = c.o.TopP, c.o.TopK
	return b, urls, nil
}

// Complete sends one generation request.
func (c *Client) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := llm.ValidateRequest(c.o.Profile, req); err != nil {
		return llm.Response{}, err
	}
	body, urls, err := c.NewBody(ctx, req)
	if err != nil {
		return llm.Response{}, err
	}
	resp, err := c.send(ctx, req, body)
	if err != nil && len(urls) > 0 {
		// The answer may quote the image's URL: never its signature.
		err = c.byURL(hideError(err, urls))
	}
	return resp, err
}

// send posts body and reads the answer.
func (c *Client) send(ctx context.Context, req llm.Request, b Body) (llm.Response, error) {
	const name = llm.ProviderDashScope
	payload, err := json.Marshal(b)
	if err != nil {
		return llm.Response{}, &llm.Error{Provider: name, Kind: llm.Permanent, Err: fmt.Errorf("encode request: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(payload))
	if err != nil {
		return llm.Response{}, llm.TransportError(name, fmt.Errorf("build request: %w", err), c.o.APIKey)
	}
	hr.Header.Set("Authorization", "Bearer "+c.o.APIKey)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	for k, v := range c.o.ExtraHeaders {
		hr.Header.Set(k, v)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return llm.Response{}, llm.TransportError(name, fmt.Errorf("generation: %w", err), c.o.APIKey)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if res.StatusCode >= 400 {
		return llm.Response{}, llm.HTTPError(name, res.StatusCode, res.Header, body, c.o.APIKey)
	}
	if err != nil {
		if ctx.Err() != nil {
			return llm.Response{}, llm.TransportError(name, fmt.Errorf("read answer: %w", ctx.Err()), c.o.APIKey)
		}
		return llm.Response{}, llm.BadBody(name, res.StatusCode, fmt.Errorf("read answer: %w", err), c.o.APIKey)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return llm.Response{}, llm.BadBody(name, res.StatusCode, fmt.Errorf("decode answer: %w", err), c.o.APIKey)
	}
	if a.Code != "" {
		// An error object in a 2xx answer: classify it like a 400.
		e := llm.HTTPError(name, http.StatusBadRequest, res.Header, body, c.o.APIKey)
		e.Status = res.StatusCode
		return llm.Response{}, e
	}
	resp := llm.Response{Model: c.o.Profile.Model}
	switch {
	case len(a.Output.Choices) > 0:
		ch := a.Output.Choices[0]
		resp.FinishReason = ch.FinishReason
		var sb strings.Builder
		for _, part := range ch.Message.Content {
			sb.WriteString(part.Text)
		}
		resp.Text = sb.String()
	case a.Output.Text != "":
		resp.Text = a.Output.Text
	default:
		return llm.Response{}, llm.BadBody(name, res.StatusCode, errors.New("answer has no choices"), c.o.APIKey)
	}
	resp.Usage = llm.CompleteUsage(llm.Usage{
		InputTokens: a.Usage.InputTokens, OutputTokens: a.Usage.OutputTokens, ImageTokens: a.Usage.ImageTokens,
	}, req, resp.Text)
	if err := llm.ExtractJSONAnswer(name, req, &resp); err != nil {
		return resp, err
	}
	return resp, nil
}
