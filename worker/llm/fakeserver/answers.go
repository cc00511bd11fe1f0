package fakeserver

// Answers shared with the batch fakes (worker/llm/batchapi/batchapitest): a
// chat body or a Bedrock Converse body answered exactly as the chat server
// answers it, without faults.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net/http"
	"time"
)

// Completion answers one chat body as the chat server does (without
// faults): the HTTP status and the JSON body.
func Completion(body []byte, model, id string) (int, []byte) {
	req, verr := parseRequest(body)
	if verr != nil {
		e := map[string]any{"message": verr.msg, "type": "invalid_request_error", "param": nil, "code": nil}
		if verr.code != "" {
			e["code"] = verr.code
		}
		if verr.param != "" {
			e["param"] = verr.param
		}
		b, _ := json.Marshal(map[string]any{"error": e})
		return http.StatusBadRequest, b
	}
	content, finish, completionTokens := req.reply()
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": model,
		"choices": []any{map[string]any{
			"index": 0, "message": map[string]any{"role": "assistant", "content": content},
			"finish_reason": finish, "logprobs": nil,
		}},
		"usage": map[string]any{
			"prompt_tokens": req.promptTokens, "completion_tokens": completionTokens,
			"total_tokens": req.promptTokens + completionTokens,
		},
	})
	return http.StatusOK, b
}

// reply is the answer's content, finish reason and completion tokens, cut
// at the request's max tokens as the chat server cuts it.
func (req *request) reply() (string, string, int) {
	content := req.answer()
	finish := "stop"
	n := tokens(content)
	if req.maxTokens > 0 && n > req.maxTokens {
		content = truncateRunes(content, req.maxTokens*charsPerToken)
		n = req.maxTokens
		finish = "length"
	}
	return content, finish, n
}

// ConverseAnswer answers a Converse request body as the chat server would
// answer the same request: the Converse response body and its tokens.
func ConverseAnswer(input json.RawMessage) (map[string]any, int, int, error) {
	var in struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Text  *string `json:"text"`
				Image *struct {
					Format string `json:"format"`
					Source struct {
						Bytes string `json:"bytes"`
					} `json:"source"`
				} `json:"image"`
			} `json:"content"`
		} `json:"messages"`
		System []struct {
			Text string `json:"text"`
		} `json:"system"`
		InferenceConfig *struct {
			MaxTokens *int `json:"maxTokens"`
		} `json:"inferenceConfig"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, 0, 0, errors.New("modelInput is not a Converse request body")
	}
	if len(in.Messages) == 0 {
		return nil, 0, 0, errors.New("messages must not be empty")
	}
	req := &request{}
	for _, s := range in.System {
		req.system += s.Text
		req.promptTokens += tokens(s.Text)
	}
	for i, m := range in.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, 0, 0, fmt.Errorf("messages.%d.role must be user or assistant", i)
		}
		req.promptTokens += messageOverhead
		for _, c := range m.Content {
			switch {
			case c.Text != nil:
				req.promptTokens += tokens(*c.Text)
				if m.Role == "user" {
					req.user += *c.Text + "\n"
				}
			case c.Image != nil:
				b, err := base64.StdEncoding.DecodeString(c.Image.Source.Bytes)
				if err != nil {
					return nil, 0, 0, errors.New("image bytes are not valid base64")
				}
				cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
				if err != nil {
					return nil, 0, 0, fmt.Errorf("image could not be decoded (%v)", err)
				}
				req.images++
				req.promptTokens += ImageTokens(cfg.Width, cfg.Height)
			default:
				return nil, 0, 0, errors.New("content blocks must be text or image")
			}
		}
	}
	if ic := in.InferenceConfig; ic != nil && ic.MaxTokens != nil {
		req.maxTokens = *ic.MaxTokens
	}
	content, finish, n := req.reply()
	stop := "end_turn"
	if finish == "length" {
		stop = "max_tokens"
	}
	return map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": []any{map[string]any{"text": content}}}},
		"stopReason": stop,
		"usage":      map[string]int{"inputTokens": req.promptTokens, "outputTokens": n, "totalTokens": req.promptTokens + n},
		"metrics":    map[string]int{"latencyMs": 1},
	}, req.promptTokens, n, nil
}
