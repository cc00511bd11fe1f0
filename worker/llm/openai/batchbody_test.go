package openai

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

// TestBatchBodyAndResponseMatchComplete: for the same request and the same
// answer (or error answer), the batch helpers give what Complete sends and
// returns.
func TestBatchBodyAndResponseMatchComplete(t *testing.T) {
	schemaAnswer := `{"id":"x","object":"chat.completion","model":"served-model","choices":[{"index":0,"message":{"role":"assistant","content":"Sure: {\"title\":\"Mug\"}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":700,"completion_tokens":9,"total_tokens":709}}`
	errAnswer := `{"error":{"message":"Invalid image for key ` + testKey + `","type":"invalid_request_error","code":"invalid_image"}}`
	req := llm.Request{System: "Caption.", Parts: []llm.Part{{Text: "Describe."}, {Image: llmtest.JPEG(t, 64, 48)}},
		Schema: &llm.Schema{Name: "caption", JSON: json.RawMessage(`{"type":"object"}`)}, MaxOutputTokens: 500}
	for _, tc := range []struct {
		status int
		body   string
	}{{200, schemaAnswer}, {200, qianfanAnswer}, {400, errAnswer}, {429, errAnswer}, {200, `{"choices":[]}`}} {
		srv, last, _ := server(t, jsonAnswer(tc.status, tc.body))
		c := newClient(t, Options{Profile: preset(t, "groq", srv.URL+"/v1"), APIKey: testKey})
		want, werr := c.Complete(context.Background(), req)
		body, err := c.BatchBody(req)
		if err != nil {
			t.Fatal(err)
		}
		var sent map[string]any
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sent, last.Load().body) {
			t.Errorf("batch body differs from the posted body")
		}
		got, gerr := c.ResponseFromBody(req, tc.status, []byte(tc.body))
		if got != want {
			t.Errorf("HTTP %d: batch %+v, online %+v", tc.status, got, want)
		}
		if llm.KindOf(gerr) != llm.KindOf(werr) || (gerr == nil) != (werr == nil) {
			t.Errorf("HTTP %d: batch error %v, online %v", tc.status, gerr, werr)
		}
		if gerr != nil && strings.Contains(gerr.Error(), testKey) {
			t.Errorf("HTTP %d: key in error %q", tc.status, gerr)
		}
	}
}
