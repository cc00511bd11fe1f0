package bedrock

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

// TestBatchBodyIsTheConverseBody: the batch record body is the JSON the SDK
// puts on the wire for the same request's Converse call.
func TestBatchBodyIsTheConverseBody(t *testing.T) {
	srv, last := server(t, ok)
	c := client(t, "bedrock-scout", srv.URL, 5*time.Second)
	temp := 0.2
	for name, req := range map[string]llm.Request{
		"text": {System: "Summarize.", Parts: []llm.Part{{Text: "intro"}, {Document: true, Text: "[page 1] lease"}},
			MaxOutputTokens: 900, Temperature: &temp},
		"image": {System: "Caption.", Parts: []llm.Part{{Text: "Describe."}, {Image: llmtest.PNG(t, 40, 30)}},
			Schema: &llm.Schema{Name: "caption", JSON: json.RawMessage(`{"type":"object"}`)}},
	} {
		// The canned answer holds no JSON: with a schema Complete fails
		// after sending, which is all this test needs.
		if _, err := c.Complete(context.Background(), req); err != nil && req.Schema == nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := c.BatchBody(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if want := last.Load().body; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: batch body\n%v\nConverse wire body\n%v", name, got, want)
		}
	}
	// The same validation as Complete.
	bad := llm.Request{Parts: []llm.Part{{Text: "x"}, {Image: &llm.Image{MIME: "image/tiff", Data: []byte{1}}}}}
	if _, err := c.BatchBody(bad); llm.KindOf(err) != llm.Permanent {
		t.Errorf("tiff: %v", err)
	}
}

// TestResponseFromBodyIsTheConverseAnswer: a modelOutput maps to what
// Complete returns for the same answer, JSON extraction included.
func TestResponseFromBodyIsTheConverseAnswer(t *testing.T) {
	answer := `{"output":{"message":{"role":"assistant","content":[{"text":"Here: {\"title\":\"Mug\"} done"}]}},"stopReason":"end_turn","usage":{"inputTokens":321,"outputTokens":12,"totalTokens":333}}`
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	})
	c := client(t, "bedrock-scout", srv.URL, 5*time.Second)
	for _, req := range []llm.Request{
		{Parts: []llm.Part{{Text: "Describe."}, {Image: llmtest.JPEG(t, 50, 40)}}, Schema: &llm.Schema{Name: "caption", JSON: json.RawMessage(`{"type":"object"}`)}},
		{Parts: []llm.Part{{Text: "Describe."}}},
	} {
		want, werr := c.Complete(context.Background(), req)
		got, gerr := c.ResponseFromBody(req, []byte(answer))
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("batch %+v (%v), online %+v (%v)", got, gerr, want, werr)
		}
	}
	if _, err := c.ResponseFromBody(llm.Request{}, []byte(`{"output":{}}`)); llm.KindOf(err) != llm.Retryable {
		t.Errorf("no message: %v", err)
	}
	for code, kind := range map[int]llm.ErrorKind{400: llm.Permanent, 429: llm.Retryable, 500: llm.Retryable, 0: llm.Retryable} {
		if e := RecordError(code, "something"); e.Kind != kind {
			t.Errorf("record error %d: %v, want %v", code, e.Kind, kind)
		}
	}
}
