package openai

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

const testKey = "sk-test-0123456789abcdef"

// qianfanAnswer is the non-streaming answer shape from
// qianfan-v2-multimodal-chat-api.zh.txt.
const qianfanAnswer = `{
    "id": "as-t4ntazzewk",
    "object": "chat.completion",
    "created": 1742198333,
    "model": "llama-4-scout-17b-16e-instruct",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A red ceramic mug on a wooden table."}, "finish_reason": "stop", "flag": 0}],
    "usage": {"prompt_tokens": 3019, "completion_tokens": 102, "total_tokens": 3121}
}`

type captured struct {
	path, auth, header string
	body               map[string]any
}

// server answers every request with handler after recording it.
func server(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Pointer[captured], *atomic.Int32) {
	t.Helper()
	var last atomic.Pointer[captured]
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		raw, _ := io.ReadAll(r.Body)
		c := &captured{path: r.URL.Path, auth: r.Header.Get("Authorization"), header: r.Header.Get("X-Title")}
		if err := json.Unmarshal(raw, &c.body); err != nil {
			t.Errorf("request body is not JSON: %v", err)
		}
		last.Store(c)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &last, &calls
}

func jsonAnswer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func preset(t *testing.T, name, base string) llm.Profile {
	t.Helper()
	p, ok := llm.Builtins()[name]
	if !ok {
		t.Fatalf("no preset %s", name)
	}
	p.BaseURL = base
	return p
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func temp(f float64) *float64 { return &f }

func TestQianfanRequestShape(t *testing.T) {
	srv, last, _ := server(t, jsonAnswer(200, qianfanAnswer))
	c := newClient(t, Options{
		Profile:      preset(t, "qianfan", srv.URL+"/v2"),
		APIKey:       testKey,
		ExtraHeaders: map[string]string{"X-Title": "llamapipe"},
	})
	jpg := llmtest.JPEG(t, 64, 48)
	jpg.Detail = "low"
	png := llmtest.PNG(t, 20, 10)
	resp, err := c.Complete(context.Background(), llm.Request{
		System:          "You caption product photos.",
		Parts:           []llm.Part{{Text: "Describe the product."}, {Image: jpg}, {Image: png}},
		MaxOutputTokens: 512,
		Temperature:     temp(0.2),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := last.Load()
	if got.path != "/v2/chat/completions" {
		t.Errorf("path %q, want /v2/chat/completions", got.path)
	}
	if got.auth != "Bearer "+testKey {
		t.Errorf("Authorization %q", got.auth)
	}
	if got.header != "llamapipe" {
		t.Errorf("extra header X-Title = %q", got.header)
	}
	b := got.body
	if b["model"] != "llama-4-scout-17b-16e-instruct" {
		t.Errorf("model %v", b["model"])
	}
	if b["max_completion_tokens"] != 512.0 {
		t.Errorf("max_completion_tokens %v, want 512", b["max_completion_tokens"])
	}
	if _, ok := b["max_tokens"]; ok {
		t.Error("max_tokens sent; Qianfan needs max_completion_tokens only")
	}
	if b["temperature"] != 0.2 {
		t.Errorf("temperature %v", b["temperature"])
	}
	if _, ok := b["response_format"]; ok {
		t.Error("response_format sent without a schema")
	}
	msgs := b["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want system + user", len(msgs))
	}
	sys := msgs[0].(map[string]any)
	if sys["role"] != "system" || sys["content"] != "You caption product photos." {
		t.Errorf("system message %v", sys)
	}
	user := msgs[1].(map[string]any)
	parts := user["content"].([]any)
	if user["role"] != "user" || len(parts) != 3 {
		t.Fatalf("user message %v", user)
	}
	p0 := parts[0].(map[string]any)
	if p0["type"] != "text" || p0["text"] != "Describe the product." {
		t.Errorf("text part %v", p0)
	}
	p1 := parts[1].(map[string]any)
	if p1["type"] != "image_url" {
		t.Fatalf("part 1 type %v", p1["type"])
	}
	u1 := p1["image_url"].(map[string]any)
	llmtest.CheckDataURL(t, u1["url"].(string), "image/jpeg", 64, 48)
	if u1["detail"] != "low" {
		t.Errorf("detail %v, want low", u1["detail"])
	}
	u2 := parts[2].(map[string]any)["image_url"].(map[string]any)
	llmtest.CheckDataURL(t, u2["url"].(string), "image/png", 20, 10)
	if _, ok := u2["detail"]; ok {
		t.Errorf("detail sent for an image without one: %v", u2["detail"])
	}

	if resp.Text != "A red ceramic mug on a wooden table." || resp.FinishReason != "stop" || resp.Model != "llama-4-scout-17b-16e-instruct" {
		t.Errorf("response %+v", resp)
	}
	u := resp.Usage
	if u.InputTokens != 3019 || u.OutputTokens != 102 || u.Estimated {
		t.Errorf("usage %+v, want reported 3019/102", u)
	}
	if u.ImageTokens <= 0 || u.ImageTokens > u.InputTokens {
		t.Errorf("image tokens %d not estimated within input tokens", u.ImageTokens)
	}
}

func TestStructuredOutputModes(t *testing.T) {
	schema := &llm.Schema{Name: "caption v1", JSON: json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"}},"required":["title"]}`)}
	answer := "Here you go:\n```json\n{\"title\": \"Red mug\",}\n```"
	body := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":` + mustJSON(answer) + `},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`
	for _, tt := range []struct {
		name              string
		jsonSchema, jsObj bool
		wantFormat        string
		wantInstruction   bool
	}{
		{"json_schema", true, true, "json_schema", false},
		{"json_object", false, true, "json_object", true},
		{"instructions", false, false, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, last, _ := server(t, jsonAnswer(200, body))
			p := preset(t, "groq", srv.URL+"/openai/v1")
			p.JSONSchema, p.JSONObject = tt.jsonSchema, tt.jsObj
			c := newClient(t, Options{Profile: p, APIKey: testKey})
			resp, err := c.Complete(context.Background(), llm.Request{System: "Caption.", Parts: []llm.Part{{Text: "mug"}}, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != `{"title":"Red mug"}` {
				t.Errorf("text %q, want the extracted, repaired object", resp.Text)
			}
			b := last.Load().body
			rf, _ := b["response_format"].(map[string]any)
			if tt.wantFormat == "" {
				if rf != nil {
					t.Errorf("response_format %v sent to a model without support", rf)
				}
			} else if rf["type"] != tt.wantFormat {
				t.Errorf("response_format %v, want type %s", rf, tt.wantFormat)
			}
			if tt.wantFormat == "json_schema" {
				js := rf["json_schema"].(map[string]any)
				if js["name"] != "caption_v1" {
					t.Errorf("schema name %v, want caption_v1", js["name"])
				}
				if props := js["schema"].(map[string]any)["properties"].(map[string]any); props["title"] == nil {
					t.Errorf("schema not sent: %v", js)
				}
			}
			sys := b["messages"].([]any)[0].(map[string]any)["content"].(string)
			if has := strings.Contains(sys, `"required":["title"]`); has != tt.wantInstruction {
				t.Errorf("schema in system prompt = %v, want %v: %q", has, tt.wantInstruction, sys)
			}
			if !strings.HasPrefix(sys, "Caption.") {
				t.Errorf("system prompt lost: %q", sys)
			}
		})
	}
}

func TestAnswerWithoutJSONIsPermanent(t *testing.T) {
	body := `{"choices":[{"index":0,"message":{"role":"assistant","content":"I cannot help with that"},"finish_reason":"length"}]}`
	srv, _, _ := server(t, jsonAnswer(200, body))
	c := newClient(t, Options{Profile: preset(t, "reseller", srv.URL), APIKey: testKey})
	resp, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}, Schema: &llm.Schema{Name: "s"}})
	e := llmtest.Kind(t, err, llm.Permanent)
	if e.Code != "invalid_json" || !errors.Is(err, llm.ErrInvalidJSON) || !strings.Contains(e.Message, "token limit") {
		t.Errorf("error %+v", e)
	}
	if strings.Contains(err.Error(), "cannot help") {
		t.Error("error quotes the model's answer")
	}
	if resp.Text != "I cannot help with that" {
		t.Errorf("raw answer not returned: %q", resp.Text)
	}
}

func TestLegacyMaxTokensAndProfileCap(t *testing.T) {
	srv, last, _ := server(t, jsonAnswer(200, qianfanAnswer))
	p := preset(t, "vllm", srv.URL+"/v1")
	p.Model = "scout"
	p.LegacyMaxTokens = true
	c := newClient(t, Options{Profile: p})
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hi"}}, MaxOutputTokens: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	b := last.Load().body
	if b["max_tokens"] != float64(p.MaxOutputTokens) {
		t.Errorf("max_tokens %v, want the profile cap %d", b["max_tokens"], p.MaxOutputTokens)
	}
	if _, ok := b["max_completion_tokens"]; ok {
		t.Error("max_completion_tokens sent in legacy mode")
	}
}

func TestNoKeySendsNoAuthorization(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-from-environment-must-not-leak")
	t.Setenv("OPENAI_ORG_ID", "org-env")
	var org atomic.Value
	srv, last, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		org.Store(r.Header.Get("OpenAI-Organization"))
		jsonAnswer(200, qianfanAnswer)(w, r)
	})
	p := preset(t, "ollama", srv.URL+"/v1")
	p.Model = "llama4:scout"
	c := newClient(t, Options{Profile: p})
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hi"}}}); err != nil {
		t.Fatal(err)
	}
	if a := last.Load().auth; a != "" {
		t.Errorf("Authorization %q sent to a keyless server", a)
	}
	if o := org.Load().(string); o != "" {
		t.Errorf("OpenAI-Organization %q taken from the environment", o)
	}
}

func TestMissingUsageIsEstimated(t *testing.T) {
	body := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("word ", 40) + `"},"finish_reason":"stop"}]}`
	srv, _, _ := server(t, jsonAnswer(200, body))
	c := newClient(t, Options{Profile: preset(t, "together", srv.URL), APIKey: testKey})
	img := llmtest.JPEG(t, 700, 400) // 3x2 tiles + global
	resp, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: strings.Repeat("a", 400)}, {Image: img}}})
	if err != nil {
		t.Fatal(err)
	}
	u := resp.Usage
	if !u.Estimated {
		t.Fatalf("usage %+v not marked estimated", u)
	}
	if u.OutputTokens != 50 { // 200 chars / 4
		t.Errorf("output estimate %d, want 50", u.OutputTokens)
	}
	if u.ImageTokens != llm.EstimateImageTokens(700, 400) || u.InputTokens < u.ImageTokens+100 {
		t.Errorf("input estimate %+v", u)
	}
}

func TestValidationBeforeSending(t *testing.T) {
	srv, _, calls := server(t, jsonAnswer(200, qianfanAnswer))
	p := preset(t, "qianfan", srv.URL)
	p.MaxImageBytes = 100
	c := newClient(t, Options{Profile: p, APIKey: testKey})
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Image: llmtest.JPEG(t, 64, 64)}}})
	llmtest.Kind(t, err, llm.TooLarge)
	gif := &llm.Image{MIME: "image/gif", Data: []byte("GIF89a")}
	_, err = c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Image: gif}}})
	llmtest.Kind(t, err, llm.Permanent)
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests sent for invalid input", n)
	}
}

func TestErrorClassification(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		kind        llm.ErrorKind
		rateLimited bool
		retryAfter  time.Duration // lower bound
		msg         string
	}{
		{"401 echoing key", jsonAnswer(401, `{"error":{"message":"Incorrect API key provided: `+testKey+`","type":"invalid_request_error","code":"invalid_api_key"}}`), llm.Fatal, false, 0, "Incorrect API key provided: [REDACTED]"},
		{"403", jsonAnswer(403, `{"error":{"message":"model access denied"}}`), llm.Fatal, false, 0, "model access denied"},
		{"400 OpenAI-style", jsonAnswer(400, `{"error":{"message":"Invalid value for 'model'","type":"invalid_request_error","code":"model_not_found"}}`), llm.Permanent, false, 0, "Invalid value for 'model'"},
		{"400 Qianfan flat", jsonAnswer(400, `{"code":"invalid_argument","msg":"max_completion_tokens must be in [2,8192]","type":"invalid_request_error"}`), llm.Permanent, false, 0, "max_completion_tokens must be in [2,8192]"},
		{"400 image too large", jsonAnswer(400, `{"error":{"message":"Image size exceeds the 10MB limit","code":"invalid_image"}}`), llm.TooLarge, false, 0, "exceeds"},
		{"400 context", jsonAnswer(400, `{"error":{"message":"This model's maximum context length is 131072 tokens"}}`), llm.TooLarge, false, 0, "maximum context length"},
		{"413", jsonAnswer(413, `{"error":{"message":"Request Entity Too Large"}}`), llm.TooLarge, false, 0, "Too Large"},
		{"429 seconds", jsonAnswer(429, `{"error":{"message":"Rate limit reached","type":"rate_limit_exceeded"}}`, "Retry-After", "7"), llm.Retryable, true, 7 * time.Second, "Rate limit reached"},
		{"429 date", jsonAnswer(429, `{"error":{"message":"slow down"}}`, "Retry-After", date), llm.Retryable, true, 60 * time.Second, "slow down"},
		{"429 insufficient quota", jsonAnswer(429, `{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}`), llm.Fatal, false, 0, "quota"},
		{"Qianfan rpm limit as 400", jsonAnswer(400, `{"error":{"code":"rpm_rate_limit_exceeded","message":"Rate limit reached for RPM","type":"rate_limit_exceeded"}}`), llm.Retryable, true, 0, "RPM"},
		{"408", jsonAnswer(408, `{}`), llm.Retryable, false, 0, ""},
		{"500", jsonAnswer(500, `{"error":{"message":"internal error"}}`), llm.Retryable, false, 0, "internal error"},
		{"502 html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html><body>Bad Gateway</body></html>")
		}, llm.Retryable, false, 0, "Bad Gateway"},
		{"garbage 200", jsonAnswer(200, `<<<not json>>>`), llm.Retryable, false, 0, ""},
		{"text/plain 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "upstream hiccup")
		}, llm.Retryable, false, 0, ""},
		{"truncated 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "4000")
			_, _ = io.WriteString(w, qianfanAnswer[:60])
		}, llm.Retryable, false, 0, ""},
		{"200 without choices", jsonAnswer(200, `{"id":"x","object":"chat.completion","choices":[]}`), llm.Retryable, false, 0, ""},
		{"200 with error object", jsonAnswer(200, `{"error":{"code":"invalid_model","message":"model not supported"}}`), llm.Permanent, false, 0, "model not supported"},
		{"slow answer", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, llm.Retryable, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, _ := server(t, tt.handler)
			c := newClient(t, Options{Profile: preset(t, "groq", srv.URL), APIKey: testKey, Timeout: timeoutFor(tt.name)})
			_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hello"}}})
			e := llmtest.Kind(t, err, tt.kind)
			if e.RateLimited != tt.rateLimited || llm.IsRateLimited(err) != tt.rateLimited {
				t.Errorf("RateLimited %v, want %v", e.RateLimited, tt.rateLimited)
			}
			ra, ok := llm.RetryAfter(err)
			if tt.retryAfter > 0 && (!ok || ra < tt.retryAfter || ra > tt.retryAfter+time.Minute) {
				t.Errorf("RetryAfter %v %v, want about %v", ra, ok, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the API key: %q", err)
			}
		})
	}
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, Options{Profile: preset(t, "groq", "http://"+addr+"/v1"), APIKey: testKey})
	_, err = c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}})
	llmtest.Kind(t, err, llm.Retryable)
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestUntrustedCertificateIsFatal(t *testing.T) {
	srv := httptest.NewTLSServer(jsonAnswer(200, qianfanAnswer))
	t.Cleanup(srv.Close)
	c := newClient(t, Options{Profile: preset(t, "groq", srv.URL+"/v1"), APIKey: testKey})
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}})
	llmtest.Kind(t, err, llm.Fatal)
}

func TestConcurrentUse(t *testing.T) {
	srv, _, calls := server(t, jsonAnswer(200, qianfanAnswer))
	c := newClient(t, Options{Profile: preset(t, "groq", srv.URL), APIKey: testKey})
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: strings.Repeat("x", i)}}})
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if calls.Load() != 16 {
		t.Errorf("%d calls reached the server", calls.Load())
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

// Qianfan v2's image_url.detail (low or high) comes from the profile for
// images that set none; an image's own detail wins.
func TestQianfanDetailFromProfile(t *testing.T) {
	srv, last, _ := server(t, jsonAnswer(200, qianfanAnswer))
	p := preset(t, "qianfan", srv.URL+"/v2")
	p.ImageDetail = "high"
	c := newClient(t, Options{Profile: p, APIKey: testKey})
	own := llmtest.JPEG(t, 32, 32)
	own.Detail = "low"
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "Describe."}, {Image: llmtest.PNG(t, 20, 10)}, {Image: own}}}); err != nil {
		t.Fatal(err)
	}
	parts := last.Load().body["messages"].([]any)[0].(map[string]any)["content"].([]any)
	for i, want := range map[int]string{1: "high", 2: "low"} {
		if got := parts[i].(map[string]any)["image_url"].(map[string]any)["detail"]; got != want {
			t.Errorf("image %d: detail %v, want %s", i, got, want)
		}
	}
}

// Qianfan v2 takes max_completion_tokens in [2, 8192]: a cap of 1 is
// refused before anything is sent.
func TestQianfanMinCompletionTokensRefused(t *testing.T) {
	srv, _, calls := server(t, jsonAnswer(200, qianfanAnswer))
	c := newClient(t, Options{Profile: preset(t, "qianfan", srv.URL+"/v2"), APIKey: testKey})
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hi"}}, MaxOutputTokens: 1})
	llmtest.Kind(t, err, llm.Permanent)
	if !strings.Contains(err.Error(), "minimum of 2") {
		t.Errorf("error %q does not say the minimum", err)
	}
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "hi"}}, MaxOutputTokens: 2}); err != nil {
		t.Errorf("cap 2: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d requests sent, want 1 (the cap of 2)", n)
	}
}
