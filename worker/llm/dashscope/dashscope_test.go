package dashscope

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

const testKey = "sk-dash-0123456789abcdef"

// okAnswer is the answer shape from the reference page's curl example.
const okAnswer = `{
    "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": [{"text": "A girl and a dog on a beach."}]}}]},
    "usage": {"output_tokens": 79, "input_tokens": 45},
    "request_id": "c3e73869-77a5-9f29-a1cf-a42b7800805f"
}`

type seen struct {
	method, path, auth, ctype string
	body                      map[string]any
}

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Pointer[seen], *atomic.Int32) {
	t.Helper()
	var last atomic.Pointer[seen]
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		raw, _ := io.ReadAll(r.Body)
		s := &seen{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), ctype: r.Header.Get("Content-Type")}
		if err := json.Unmarshal(raw, &s.body); err != nil {
			t.Errorf("request body is not JSON: %v", err)
		}
		last.Store(s)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &last, &calls
}

func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func client(t *testing.T, base string, timeout time.Duration) *Client {
	t.Helper()
	p := llm.Builtins()["dashscope"]
	p.BaseURL = base
	topK := 50
	c, err := New(Options{Profile: p, APIKey: testKey, Timeout: timeout, TopK: &topK})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestShape(t *testing.T) {
	srv, last, _ := server(t, reply(200, okAnswer))
	c := client(t, srv.URL, 5*time.Second)
	tmp := 0.3
	resp, err := c.Complete(context.Background(), llm.Request{
		System:          "You are a helpful assistant.",
		Parts:           []llm.Part{{Text: "这是什么?"}, {Image: llmtest.JPEG(t, 40, 30)}},
		MaxOutputTokens: 300,
		Temperature:     &tmp,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := last.Load()
	if s.method != http.MethodPost || s.path != Path {
		t.Errorf("%s %s, want POST %s", s.method, s.path, Path)
	}
	if s.auth != "Bearer "+testKey || s.ctype != "application/json" {
		t.Errorf("headers: Authorization %q, Content-Type %q", s.auth, s.ctype)
	}
	b := s.body
	if b["model"] != "llama3.2-90b-vision-instruct" {
		t.Errorf("model %v", b["model"])
	}
	msgs := b["input"].(map[string]any)["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("messages %v", msgs)
	}
	sys := msgs[0].(map[string]any)
	sysContent := sys["content"].([]any)
	if sys["role"] != "system" || len(sysContent) != 1 || sysContent[0].(map[string]any)["text"] != "You are a helpful assistant." {
		t.Errorf("system message %v", sys)
	}
	user := msgs[1].(map[string]any)
	uc := user["content"].([]any)
	if user["role"] != "user" || len(uc) != 2 {
		t.Fatalf("user message %v", user)
	}
	img := uc[0].(map[string]any)
	if len(img) != 1 {
		t.Errorf("image item has extra keys: %v", keys(img))
	}
	llmtest.CheckDataURL(t, img["image"].(string), "image/jpeg", 40, 30)
	if txt := uc[1].(map[string]any); txt["text"] != "这是什么?" || len(txt) != 1 {
		t.Errorf("text item %v", txt)
	}
	params := b["parameters"].(map[string]any)
	if params["max_new_tokens"] != 300.0 || params["temperature"] != 0.3 || params["top_k"] != 50.0 {
		t.Errorf("parameters %v", params)
	}
	if _, ok := params["top_p"]; ok {
		t.Error("top_p sent though unset")
	}
	if resp.Text != "A girl and a dog on a beach." || resp.FinishReason != "stop" {
		t.Errorf("response %+v", resp)
	}
	if resp.Usage.InputTokens != 45 || resp.Usage.OutputTokens != 79 || resp.Usage.Estimated {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTextOnlyRefused(t *testing.T) {
	srv, _, calls := server(t, reply(200, okAnswer))
	c := client(t, srv.URL, time.Second)
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "summarise this", Document: true}}})
	e := llmtest.Kind(t, err, llm.Permanent)
	if e.Code != "text_only_unsupported" {
		t.Errorf("code %q", e.Code)
	}
	if calls.Load() != 0 {
		t.Error("a text-only request reached the server")
	}
	if err := llm.CheckRequestAllowed(c.Profile(), false); err == nil {
		t.Error("CheckRequestAllowed accepts a text-only batch for the vision model")
	}
}

func TestSchemaBecomesInstructionAndIsExtracted(t *testing.T) {
	body := `{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":[{"text":"` +
		"```json\\n{\\\"title\\\": \\\"Dog\\\",}\\n```" + `"}]}}]},"usage":{"input_tokens":50,"output_tokens":9},"request_id":"r"}`
	srv, last, _ := server(t, reply(200, body))
	c := client(t, srv.URL, time.Second)
	resp, err := c.Complete(context.Background(), llm.Request{
		Parts:  []llm.Part{{Image: llmtest.PNG(t, 8, 8)}, {Text: "caption"}},
		Schema: &llm.Schema{Name: "caption", JSON: json.RawMessage(`{"type":"object"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != `{"title":"Dog"}` {
		t.Errorf("text %q", resp.Text)
	}
	msgs := last.Load().body["input"].(map[string]any)["messages"].([]any)
	sys := msgs[0].(map[string]any)
	if sys["role"] != "system" || !strings.Contains(sys["content"].([]any)[0].(map[string]any)["text"].(string), `{"type":"object"}`) {
		t.Errorf("schema instruction missing: %v", sys)
	}
	if _, ok := last.Load().body["parameters"].(map[string]any)["max_new_tokens"]; !ok {
		t.Error("max_new_tokens not sent (profile default)")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		h       http.HandlerFunc
		kind    llm.ErrorKind
		limited bool
		msg     string
	}{
		{"401 InvalidApiKey", reply(401, `{"code":"InvalidApiKey","message":"Invalid API-key provided: `+testKey+`","request_id":"a1"}`), llm.Fatal, false, "request_id a1"},
		{"403 AccessDenied", reply(403, `{"code":"AccessDenied","message":"Access denied.","request_id":"a2"}`), llm.Fatal, false, "Access denied"},
		{"400 Arrearage", reply(400, `{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","request_id":"a3"}`), llm.Fatal, false, "good standing"},
		{"400 InvalidParameter", reply(400, `{"code":"InvalidParameter","message":"The image format is illegal and cannot be opened.","request_id":"a4"}`), llm.Permanent, false, "InvalidParameter: The image format is illegal"},
		{"400 DataInspectionFailed", reply(400, `{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content.","request_id":"a5"}`), llm.Permanent, false, "inappropriate"},
		{"400 input too long", reply(400, `{"code":"InvalidParameter","message":"Range of input length should be [1, 6000]","request_id":"a6"}`), llm.TooLarge, false, "input length"},
		{"413", reply(413, `{"code":"RequestTooLarge","message":"Request body too large"}`), llm.TooLarge, false, "too large"},
		{"429 Throttling", reply(429, `{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded, please try again later.","request_id":"a7"}`, "Retry-After", "3"), llm.Retryable, true, "rate limit"},
		{"500 InternalError", reply(500, `{"code":"InternalError","message":"An internal error has occured, please try again later.","request_id":"a8"}`), llm.Retryable, false, "internal error"},
		{"2xx with error code", reply(200, `{"code":"InvalidParameter","message":"url error","request_id":"a9"}`), llm.Permanent, false, "url error"},
		{"garbage", reply(200, `{"output":`), llm.Retryable, false, "decode answer"},
		{"no choices", reply(200, `{"output":{},"usage":{},"request_id":"b"}`), llm.Retryable, false, "no choices"},
		{"truncated", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			_, _ = io.WriteString(w, okAnswer[:50])
		}, llm.Retryable, false, ""},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, llm.Retryable, false, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, _ := server(t, tt.h)
			c := client(t, srv.URL, timeoutFor(tt.name))
			_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Image: llmtest.JPEG(t, 8, 8)}, {Text: "x"}}})
			e := llmtest.Kind(t, err, tt.kind)
			if e.RateLimited != tt.limited {
				t.Errorf("RateLimited %v", e.RateLimited)
			}
			if tt.limited {
				if d, ok := llm.RetryAfter(err); !ok || d != 3*time.Second {
					t.Errorf("RetryAfter %v %v", d, ok)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the key: %q", err)
			}
		})
	}
}

func TestNewNeedsKey(t *testing.T) {
	if _, err := New(Options{Profile: llm.Builtins()["dashscope"]}); err == nil {
		t.Fatal("New accepted an empty key")
	}
}

// timeoutFor gives the "slow" case a short client timeout and every other
// case a generous one, so a loaded machine cannot turn them into timeouts.
func timeoutFor(name string) time.Duration {
	if strings.HasPrefix(name, "slow") {
		return 300 * time.Millisecond
	}
	return 10 * time.Second
}
