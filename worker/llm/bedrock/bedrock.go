package bedrock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// DefaultTimeout bounds one call when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// DefaultRegion is used when neither the profile nor the AWS configuration
// names one; the us.* inference profiles live there.
const DefaultRegion = "us-east-1"

// Options configure a Client.
type Options struct {
	// Profile gives the model id, region and limits. Profile.Model is
	// required.
	Profile llm.Profile
	// Endpoint overrides the Bedrock runtime endpoint (tests, VPC
	// endpoints). Default: the region's.
	Endpoint string
	// Credentials, when set, replace the default credential chain.
	Credentials aws.CredentialsProvider
	// HTTPClient carries the requests. Default: the SDK's.
	HTTPClient *http.Client
	// Timeout bounds one call. Default DefaultTimeout.
	Timeout time.Duration
	// Temperature is used when a Request sets none. Default nil: the
	// model's default.
	Temperature *float64
}

// Client is an llm.Client for one Bedrock model. It is safe for concurrent
// use.
type Client struct {
	rt      *bedrockruntime.Client
	profile llm.Profile
	timeout time.Duration
	temp    *float64
}

var _ llm.Client = (*Client)(nil)

// New loads the AWS configuration (region, credentials) and returns a
// Client. It makes no call to Bedrock.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.Profile.Model == "" {
		return nil, errors.New("bedrock: model id is required")
	}
	var loads []func(*config.LoadOptions) error
	if o.Profile.Region != "" {
		loads = append(loads, config.WithRegion(o.Profile.Region))
	}
	if o.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		loads = append(loads, config.WithHTTPClient(o.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("bedrock: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	rt := bedrockruntime.NewFromConfig(cfg, func(bo *bedrockruntime.Options) {
		bo.Retryer = aws.NopRetryer{}
		if o.Endpoint != "" {
			bo.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	c := &Client{rt: rt, profile: o.Profile, timeout: o.Timeout, temp: o.Temperature}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.profile.Region = cfg.Region
	return c, nil
}

// Profile returns the client's profile (Region as resolved).
func (c *Client) Profile() llm.Profile { return c.profile }

var formats = map[string]types.ImageFormat{
	"image/jpeg": types.ImageFormatJpeg,
	"image/jpg":  types.ImageFormatJpeg,
	"image/png":  types.ImageFormatPng,
	"image/gif":  types.ImageFormatGif,
	"image/webp": types.ImageFormatWebp,
}

// Input builds the Converse input for req. Converse has no response_format:
// a schema becomes a system-prompt instruction.
func (c *Client) Input(req llm.Request) (*bedrockruntime.ConverseInput, error) {
	in := &bedrockruntime.ConverseInput{ModelId: aws.String(c.profile.Model)}
	if sys := llm.WithInstruction(req.System, req.Schema); sys != "" {
		in.System = []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: sys}}
	}
	var blocks []types.ContentBlock
	for i, p := range req.Parts {
		if p.Image != nil {
			f, ok := formats[strings.ToLower(p.Image.MIME)]
			if !ok {
				return nil, &llm.Error{Provider: llm.ProviderBedrock, Kind: llm.Permanent, Code: "image_format",
					Message: fmt.Sprintf("part %d: image type %q not supported by Converse", i, p.Image.MIME)}
			}
			blocks = append(blocks, &types.ContentBlockMemberImage{Value: types.ImageBlock{
				Format: f, Source: &types.ImageSourceMemberBytes{Value: p.Image.Data},
			}})
			continue
		}
		if p.Text != "" {
			blocks = append(blocks, &types.ContentBlockMemberText{Value: p.Text})
		}
	}
	in.Messages = []types.Message{{Role: types.ConversationRoleUser, Content: blocks}}
	ic := &types.InferenceConfiguration{}
	if n := llm.OutputTokens(c.profile, req); n > 0 {
		ic.MaxTokens = aws.Int32(int32(n))
	}
	t := req.Temperature
	if t == nil {
		t = c.temp
	}
	if t != nil {
		ic.Temperature = aws.Float32(float32(*t))
	}
	if ic.MaxTokens != nil || ic.Temperature != nil {
		in.InferenceConfig = ic
	}
	return in, nil
}

// Complete sends one Converse request.
func (c *Client) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := llm.ValidateRequest(c.profile, req); err != nil {
		return llm.Response{}, err
	}
	in, err := c.Input(req)
	if err != nil {
		return llm.Response{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.rt.Converse(ctx, in)
	if err != nil {
		return llm.Response{}, Classify(ctx, err)
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return llm.Response{}, llm.BadBody(llm.ProviderBedrock, http.StatusOK, errors.New("answer has no message"), "")
	}
	var sb strings.Builder
	for _, b := range msg.Value.Content {
		if t, ok := b.(*types.ContentBlockMemberText); ok {
			sb.WriteString(t.Value)
		}
	}
	resp := llm.Response{Text: sb.String(), FinishReason: string(out.StopReason), Model: c.profile.Model}
	var u llm.Usage
	if out.Usage != nil {
		u.InputTokens = int(aws.ToInt32(out.Usage.InputTokens))
		u.OutputTokens = int(aws.ToInt32(out.Usage.OutputTokens))
	}
	resp.Usage = llm.CompleteUsage(u, req, resp.Text)
	if err := llm.ExtractJSONAnswer(llm.ProviderBedrock, req, &resp); err != nil {
		return resp, err
	}
	return resp, nil
}

// Classify maps a Converse failure onto an *llm.Error:
// ThrottlingException and ServiceQuotaExceededException are Retryable and
// rate-limited; ServiceUnavailable, InternalServer, ModelNotReady,
// ModelTimeout and any answer-less failure are Retryable; AccessDenied,
// UnrecognizedClient, expired or invalid tokens and ResourceNotFound (wrong
// model id) are Fatal, as is a call that found no credentials;
// ValidationException is TooLarge when its message
// speaks of size or length, else Permanent; other 4xx are Permanent.
func Classify(ctx context.Context, err error) error {
	const name = llm.ProviderBedrock
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		if ctx.Err() != nil {
			return llm.TransportError(name, fmt.Errorf("converse: %w", ctx.Err()), "")
		}
		if status >= 400 {
			return llm.HTTPError(name, status, nil, nil, "")
		}
		if msg := err.Error(); strings.Contains(msg, "get identity:") || strings.Contains(msg, "failed to retrieve credentials") {
			// No usable AWS credentials: configuration, not a passing fault.
			return &llm.Error{Provider: name, Kind: llm.Fatal, Code: "credentials", Err: err}
		}
		var de *smithy.DeserializationError
		if errors.As(err, &de) {
			return llm.BadBody(name, status, fmt.Errorf("converse: %w", err), "")
		}
		return llm.TransportError(name, fmt.Errorf("converse: %w", err), "")
	}
	e := &llm.Error{Provider: name, Status: status, Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	if e.Message == "" {
		e.Message = api.ErrorCode()
	}
	switch code := api.ErrorCode(); code {
	case "ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException":
		e.Kind, e.RateLimited = llm.Retryable, true
	case "ServiceUnavailableException", "InternalServerException", "ModelNotReadyException",
		"ModelTimeoutException", "ModelStreamErrorException", "RequestTimeout", "RequestTimeoutException":
		e.Kind = llm.Retryable
	case "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
		"InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationTokenException",
		"InvalidClientTokenId", "ResourceNotFoundException":
		e.Kind = llm.Fatal
	case "ValidationException":
		e.Kind = llm.Permanent
		if tooLarge(api.ErrorMessage()) {
			e.Kind = llm.TooLarge
		}
	default:
		// Unknown codes: fall back on the HTTP status.
		if status > 0 {
			body, _ := json.Marshal(map[string]string{"message": api.ErrorMessage()})
			k := llm.HTTPError(name, status, nil, body, "")
			e.Kind, e.RateLimited = k.Kind, k.RateLimited
		} else {
			e.Kind = llm.Retryable
		}
	}
	return e
}

func tooLarge(msg string) bool {
	m := strings.ToLower(msg)
	for _, w := range []string{"too large", "too long", "too big", "exceed", "size", "max pixels", "maximum"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}
