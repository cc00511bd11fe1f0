package bedrock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// This file serves the batch layer (package worker/llm/batchapi): Bedrock
// batch inference jobs created with modelInvocationType "Converse" take, in
// each JSONL record's modelInput, the body of a Converse request, and give
// in modelOutput the body of a Converse response. The body is built from
// Input, the same request Complete sends.

// ConverseBody is the JSON body of a Converse request (the REST API's
// wire format, without the model id, which is in the path or the job).
type ConverseBody struct {
	Messages        []ConverseMessage  `json:"messages"`
	System          []ConverseBlock    `json:"system,omitempty"`
	InferenceConfig *ConverseInference `json:"inferenceConfig,omitempty"`
}

// ConverseMessage is one message of a Converse body.
type ConverseMessage struct {
	Role    string          `json:"role"`
	Content []ConverseBlock `json:"content"`
}

// ConverseBlock is a text or image content block (or a system block).
type ConverseBlock struct {
	Text  string         `json:"text,omitempty"`
	Image *ConverseImage `json:"image,omitempty"`
}

// ConverseImage is an image block: format ("jpeg", "png", "gif", "webp")
// and the bytes (base64 in JSON).
type ConverseImage struct {
	Format string `json:"format"`
	Source struct {
		Bytes []byte `json:"bytes"`
	} `json:"source"`
}

// ConverseInference is the inference configuration.
type ConverseInference struct {
	MaxTokens   *int32   `json:"maxTokens,omitempty"`
	Temperature *float32 `json:"temperature,omitempty"`
}

// ConverseAnswer is the JSON body of a Converse response.
type ConverseAnswer struct {
	Output struct {
		Message *ConverseMessage `json:"message"`
	} `json:"output"`
	StopReason string `json:"stopReason"`
	Usage      *struct {
		InputTokens  int `json:"inputTokens"`
		OutputTokens int `json:"outputTokens"`
		TotalTokens  int `json:"totalTokens"`
	} `json:"usage"`
}

// BatchBody returns the Converse request body Complete would send for req
// (validated the same way), as JSON for a batch record's modelInput.
func (c *Client) BatchBody(req llm.Request) ([]byte, error) {
	if err := llm.ValidateRequest(c.profile, req); err != nil {
		return nil, err
	}
	in, err := c.Input(req)
	if err != nil {
		return nil, err
	}
	var body ConverseBody
	for _, s := range in.System {
		if t, ok := s.(*types.SystemContentBlockMemberText); ok {
			body.System = append(body.System, ConverseBlock{Text: t.Value})
		}
	}
	for _, m := range in.Messages {
		cm := ConverseMessage{Role: string(m.Role)}
		for _, b := range m.Content {
			switch v := b.(type) {
			case *types.ContentBlockMemberText:
				cm.Content = append(cm.Content, ConverseBlock{Text: v.Value})
			case *types.ContentBlockMemberImage:
				src, ok := v.Value.Source.(*types.ImageSourceMemberBytes)
				if !ok {
					return nil, fmt.Errorf("bedrock: batch body: image source %T not supported", v.Value.Source)
				}
				img := &ConverseImage{Format: string(v.Value.Format)}
				img.Source.Bytes = src.Value
				cm.Content = append(cm.Content, ConverseBlock{Image: img})
			default:
				return nil, fmt.Errorf("bedrock: batch body: content block %T not supported", b)
			}
		}
		body.Messages = append(body.Messages, cm)
	}
	if ic := in.InferenceConfig; ic != nil {
		body.InferenceConfig = &ConverseInference{MaxTokens: ic.MaxTokens, Temperature: ic.Temperature}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("bedrock: encode batch body: %w", err)
	}
	return b, nil
}

// ResponseFromBody maps a batch record's modelOutput (a Converse response
// body) to what Complete would have returned for req.
func (c *Client) ResponseFromBody(req llm.Request, body []byte) (llm.Response, error) {
	var out ConverseAnswer
	if err := json.Unmarshal(body, &out); err != nil {
		return llm.Response{}, llm.BadBody(llm.ProviderBedrock, http.StatusOK, fmt.Errorf("batch answer: %w", err), "")
	}
	if out.Output.Message == nil {
		return llm.Response{}, llm.BadBody(llm.ProviderBedrock, http.StatusOK, errors.New("answer has no message"), "")
	}
	var sb strings.Builder
	for _, b := range out.Output.Message.Content {
		sb.WriteString(b.Text)
	}
	resp := llm.Response{Text: sb.String(), FinishReason: out.StopReason, Model: c.profile.Model}
	var u llm.Usage
	if out.Usage != nil {
		u.InputTokens, u.OutputTokens = out.Usage.InputTokens, out.Usage.OutputTokens
	}
	resp.Usage = llm.CompleteUsage(u, req, resp.Text)
	if err := llm.ExtractJSONAnswer(llm.ProviderBedrock, req, &resp); err != nil {
		return resp, err
	}
	return resp, nil
}

// RecordError maps a batch record's error object ({"errorCode": 400,
// "errorMessage": "..."}) onto an *llm.Error, classified by its code as an
// HTTP answer would be.
func RecordError(code int, message string) *llm.Error {
	body, _ := json.Marshal(map[string]string{"message": message})
	if code < 400 {
		e := llm.HTTPError(llm.ProviderBedrock, http.StatusInternalServerError, nil, body, "")
		e.Status = code
		return e
	}
	return llm.HTTPError(llm.ProviderBedrock, code, nil, body, "")
}
