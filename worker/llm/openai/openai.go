package openai

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// DefaultTimeout bounds one call when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Options configure a Client.
type Options struct {
	// Profile gives the base URL, model, limits and structured-output
	// support. Profile.BaseURL and Profile.Model are required.
	Profile llm.Profile
	// APIKey is sent as a bearer token. Empty sends no Authorization header
	// (vLLM, Ollama).
	APIKey string
	// ExtraHeaders are added to every request (e.g. OpenRouter's
	// HTTP-Referer). Default none.
	ExtraHeaders map[string]string
	// HTTPClient carries the requests. Default: a fresh http.Client.
	HTTPClient *http.Client
	// Timeout bounds one call, answer included. Default DefaultTimeout.
	Timeout time.Duration
	// Temperature is used when a Request sets none. Default nil: the
	// service's default.
	Temperature *float64
	// Name is the provider name in errors. Default "openai".
	Name string
}

// Client is an llm.Client for one OpenAI-compatible endpoint and model. It
// is safe for concurrent use.
type Client struct {
	sdk     sdk.Client
	profile llm.Profile
	key     string
	timeout time.Duration
	temp    *float64
	name    string
}

var _ llm.Client = (*Client)(nil)

// New returns a Client. It makes no network call.
func New(o Options) (*Client, error) {
	if o.Profile.BaseURL == "" {
		return nil, errors.New("openai: base URL is required")
	}
	if o.Profile.Model == "" {
		return nil, errors.New("openai: model is required")
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	c := &Client{profile: o.Profile, key: o.APIKey, timeout: o.Timeout, temp: o.Temperature, name: o.Name}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.name == "" {
		c.name = llm.ProviderOpenAI
	}
	opts := []option.RequestOption{
		option.WithBaseURL(o.Profile.BaseURL),
		option.WithHTTPClient(hc),
		// Retries belong to the queue; errors are classified instead.
		option.WithMaxRetries(0),
		// An explicit key (possibly empty) so that OPENAI_API_KEY from the
		// environment never reaches a third-party endpoint; same for the
		// organization/project headers the SDK takes from the environment.
		option.WithAPIKey(o.APIKey),
		option.WithHeaderDel("OpenAI-Organization"),
		option.WithHeaderDel("OpenAI-Project"),
	}
	for k, v := range o.ExtraHeaders {
		opts = append(opts, option.WithHeader(k, v))
	}
	c.sdk = sdk.NewClient(opts...)
	return c, nil
}

// Profile returns the profile the client was made with.
func (c *Client) Profile() llm.Profile { return c.profile }

var schemaName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Params builds the chat completion request for req (exported for tests
// and tools that print the request; it carries image data).
func (c *Client) Params(req llm.Request) sdk.ChatCompletionNewParams {
	p := c.profile
	system := req.System
	var format sdk.ChatCompletionNewParamsResponseFormatUnion
	if req.Schema != nil {
		switch {
		case p.JSONSchema:
			name := schemaName.ReplaceAllString(req.Schema.Name, "_")
			if name == "" {
				name = "answer"
			}
			format.OfJSONSchema = &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: name, Schema: req.Schema.JSON},
			}
		case p.JSONObject:
			format.OfJSONObject = &shared.ResponseFormatJSONObjectParam{}
			system = llm.WithInstruction(system, req.Schema)
		default:
			system = llm.WithInstruction(system, req.Schema)
		}
	}
	var msgs []sdk.ChatCompletionMessageParamUnion
	if system != "" {
		msgs = append(msgs, sdk.SystemMessage(system))
	}
	parts := make([]sdk.ChatCompletionContentPartUnionParam, 0, len(req.Parts))
	for _, part := range req.Parts {
		if part.Image != nil {
			parts = append(parts, sdk.ImageContentPart(sdk.ChatCompletionContentPartImageImageURLParam{
				URL:    DataURL(part.Image),
				Detail: cmp.Or(part.Image.Detail, p.ImageDetail),
			}))
			continue
		}
		parts = append(parts, sdk.TextContentPart(part.Text))
	}
	msgs = append(msgs, sdk.UserMessage(parts))
	params := sdk.ChatCompletionNewParams{Model: p.Model, Messages: msgs, ResponseFormat: format}
	if n := llm.OutputTokens(p, req); n > 0 {
		if p.LegacyMaxTokens {
			params.MaxTokens = param.NewOpt(int64(n))
		} else {
			params.MaxCompletionTokens = param.NewOpt(int64(n))
		}
	}
	if t := req.Temperature; t != nil {
		params.Temperature = param.NewOpt(*t)
	} else if c.temp != nil {
		params.Temperature = param.NewOpt(*c.temp)
	}
	return params
}

// DataURL encodes img as data:<mime>;base64,<data>.
func DataURL(img *llm.Image) string {
	mime := img.MIME
	if mime == "" {
		mime = "image/jpeg"
	}
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(img.Data)
}

// Complete sends one chat completion.
func (c *Client) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := llm.ValidateRequest(c.profile, req); err != nil {
		return llm.Response{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var httpResp *http.Response
	cc, err := c.sdk.Chat.Completions.New(ctx, c.Params(req), option.WithResponseInto(&httpResp))
	if err != nil {
		return llm.Response{}, c.classify(ctx, httpResp, err)
	}
	resp, err := c.answer(cc, cc.RawJSON(), req)
	if httpResp != nil {
		if l, ok := llm.ParseRateLimits(httpResp.Header, time.Now()); ok {
			resp.Limits = &l
		}
	}
	return resp, err
}

// answer maps a chat completion (raw: its JSON, for the error of an empty
// answer) to the Response for req: text, finish reason, model, usage
// (estimated where the provider gave none) and the JSON object when req has
// a schema. Online and batch answers go through it alike.
func (c *Client) answer(cc *sdk.ChatCompletion, raw string, req llm.Request) (llm.Response, error) {
	if len(cc.Choices) == 0 {
		return llm.Response{}, c.emptyAnswer(raw)
	}
	ch := cc.Choices[0]
	resp := llm.Response{
		Text:         ch.Message.Content,
		FinishReason: ch.FinishReason,
		Model:        cc.Model,
	}
	if resp.Model == "" {
		resp.Model = c.profile.Model
	}
	resp.Usage = llm.CompleteUsage(llm.Usage{
		InputTokens:  int(cc.Usage.PromptTokens),
		OutputTokens: int(cc.Usage.CompletionTokens),
	}, req, resp.Text)
	if err := llm.ExtractJSONAnswer(c.name, req, &resp); err != nil {
		return resp, err
	}
	return resp, nil
}

// classify turns an SDK failure into an *llm.Error.
func (c *Client) classify(ctx context.Context, resp *http.Response, err error) error {
	switch {
	case resp != nil && resp.StatusCode >= 400:
		var body []byte
		if resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		return llm.HTTPError(c.name, resp.StatusCode, resp.Header, body, c.key)
	case ctx.Err() != nil:
		return llm.TransportError(c.name, fmt.Errorf("chat completion: %w", ctx.Err()), c.key)
	case resp != nil:
		// An answer arrived but could not be read or decoded.
		return llm.BadBody(c.name, resp.StatusCode, fmt.Errorf("chat completion: %w", err), c.key)
	default:
		return llm.TransportError(c.name, fmt.Errorf("chat completion: %w", err), c.key)
	}
}

// emptyAnswer classifies a 2xx answer without choices: some services
// (Qianfan among them) put an error object in a 200 answer.
func (c *Client) emptyAnswer(raw string) error {
	var probe map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &probe) == nil {
		_, hasErr := probe["error"]
		_, hasCode := probe["code"]
		if hasErr || hasCode {
			e := llm.HTTPError(c.name, http.StatusBadRequest, nil, []byte(raw), c.key)
			e.Status = http.StatusOK
			return e
		}
	}
	return llm.BadBody(c.name, http.StatusOK, errors.New("answer has no choices"), c.key)
}
