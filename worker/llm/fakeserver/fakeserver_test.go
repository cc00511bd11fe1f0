package fakeserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

const key = "sk-fake-0123456789"

func start(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	fs := New(o)
	srv := httptest.NewServer(fs)
	t.Cleanup(func() { fs.Close(); srv.Close() })
	return fs, srv
}

func client(t *testing.T, base string, jsonSchema bool, apiKey string, timeout time.Duration) *openai.Client {
	t.Helper()
	c, err := openai.New(openai.Options{
		Profile: llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: base, Model: "llama-4-scout", ContextTokens: 131072,
			MaxOutputTokens: 4096, MaxImages: 5, TextOnly: true, JSONSchema: jsonSchema,
			ImageFormats: []string{"image/jpeg", "image/png"}},
		APIKey:  apiKey,
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// templateRequest builds the request the worker sends for a template.
func templateRequest(t *testing.T, name string) (*prompts.Template, llm.Request) {
	t.Helper()
	tmpl, err := prompts.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	var data any
	switch name {
	case prompts.Caption:
		data = prompts.CaptionData{Language: "en"}
	case prompts.Summary:
		data = prompts.SummaryData{Language: "en", Title: "a.txt", Pages: 2}
	case prompts.SummaryMap:
		data = prompts.ChunkData{Language: "en", Chunk: 1, Chunks: 2, FirstPage: 1, LastPage: 2}
	case prompts.SummaryReduce:
		data = prompts.ReduceData{Language: "en", Parts: 2, Title: "a.txt", Pages: 4}
	}
	user, err := tmpl.Render(data)
	if err != nil {
		t.Fatal(err)
	}
	req := llm.Request{System: tmpl.System, Parts: []llm.Part{{Text: user}},
		Schema: &llm.Schema{Name: tmpl.SchemaName, JSON: tmpl.Schema}}
	if name == prompts.Caption {
		req.Parts = append(req.Parts, llm.Part{Image: llmtest.JPEG(t, 700, 400)})
	} else {
		req.Parts = append(req.Parts, llm.Part{Document: true, Text: "[page 1] This Agreement is made between Acme and Beta. " + strings.Repeat("The tenant pays rent monthly. ", 40)})
	}
	return tmpl, req
}

// TestAnswersValidateForEverySchema: with json_schema and with the schema
// only in the system prompt, every template's answer validates, and usage
// follows the request's size.
func TestAnswersValidateForEverySchema(t *testing.T) {
	fs, srv := start(t, Options{APIKey: key})
	for _, structured := range []bool{true, false} {
		c := client(t, srv.URL+"/v1", structured, key, 5*time.Second)
		for _, name := range []string{prompts.Caption, prompts.Summary, prompts.SummaryMap, prompts.SummaryReduce} {
			tmpl, req := templateRequest(t, name)
			resp, err := c.Complete(context.Background(), req)
			if err != nil {
				t.Fatalf("%s (json_schema %v): %v", name, structured, err)
			}
			if err := tmpl.Validate([]byte(resp.Text)); err != nil {
				t.Errorf("%s (json_schema %v): %v\n%s", name, structured, err, resp.Text)
			}
			if resp.Model != DefaultModel || resp.FinishReason != "stop" || resp.Usage.Estimated {
				t.Errorf("%s: model %q finish %q estimated %v", name, resp.Model, resp.FinishReason, resp.Usage.Estimated)
			}
			// Prompt tokens: at least the text's characters / 4.
			chars := len(req.System)
			for _, p := range req.Parts {
				chars += len(p.Text)
			}
			if !structured {
				chars += len(tmpl.Schema) // the system prompt carries the schema
			}
			if resp.Usage.InputTokens < chars/4 || resp.Usage.InputTokens > chars/4+1200 {
				t.Errorf("%s: %d prompt tokens for %d characters", name, resp.Usage.InputTokens, chars)
			}
			if want := (len(resp.Text) + 3) / 4; resp.Usage.OutputTokens != want {
				t.Errorf("%s: %d completion tokens for %d answer characters, want %d", name, resp.Usage.OutputTokens, len(resp.Text), want)
			}
			if name == prompts.Caption && resp.Usage.InputTokens < 3*144 {
				t.Errorf("caption: %d prompt tokens do not count the 700x400 image's tiles", resp.Usage.InputTokens)
			}
		}
	}
	st := fs.Stats()
	if st.Requests != 8 || st.OK != 8 || st.Images != 2 || st.Faults() != 0 || st.BadRequests != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestFaultsBecomeTheErrorKindsTheWorkerExpects runs each fault alone at
// rate 1 through the real OpenAI-compatible client.
func TestFaultsBecomeTheErrorKindsTheWorkerExpects(t *testing.T) {
	_, req := templateRequest(t, prompts.Summary)
	ctx := context.Background()

	t.Run("429", func(t *testing.T) {
		fs, srv := start(t, Options{Rate429: 1, Latency: time.Second})
		start := time.Now()
		_, err := client(t, srv.URL+"/v1", true, key, 5*time.Second).Complete(ctx, req)
		e := llmtest.Kind(t, err, llm.Retryable)
		if !e.RateLimited || e.Status != 429 || e.RetryAfter != time.Second || !llm.IsRateLimited(err) {
			t.Errorf("429: %+v", e)
		}
		if time.Since(start) >= time.Second {
			t.Error("a 429 waited for the latency")
		}
		if st := fs.Stats(); st.RateLimited != 1 || st.OK != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("500", func(t *testing.T) {
		fs, srv := start(t, Options{Rate500: 1})
		_, err := client(t, srv.URL+"/v1", true, key, 5*time.Second).Complete(ctx, req)
		if e := llmtest.Kind(t, err, llm.Retryable); e.Status != 500 || e.RateLimited {
			t.Errorf("500: %+v", e)
		}
		if st := fs.Stats(); st.ServerErrors != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		// Both variants (truncated JSON, HTML) over a few requests.
		fs, srv := start(t, Options{RateGarbage: 1, Seed: 3})
		c := client(t, srv.URL+"/v1", true, key, 5*time.Second)
		for range 6 {
			_, err := c.Complete(ctx, req)
			if e := llmtest.Kind(t, err, llm.Retryable); e.RateLimited {
				t.Errorf("garbage: %+v", e)
			}
		}
		if st := fs.Stats(); st.Garbage != 6 || st.OK != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("hang", func(t *testing.T) {
		fs, srv := start(t, Options{RateHang: 1})
		_, err := client(t, srv.URL+"/v1", true, key, 300*time.Millisecond).Complete(ctx, req)
		if e := llmtest.Kind(t, err, llm.Retryable); e.Code != "no_answer" {
			t.Errorf("hang: %+v", e)
		}
		if st := fs.Stats(); st.Hangs != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("401", func(t *testing.T) {
		fs, srv := start(t, Options{APIKey: key})
		_, err := client(t, srv.URL+"/v1", true, "sk-wrong-key-99999", 5*time.Second).Complete(ctx, req)
		e := llmtest.Kind(t, err, llm.Fatal)
		if e.Status != 401 || e.Code != "invalid_api_key" || e.Message != "Incorrect API key provided" {
			t.Errorf("401: %+v", e)
		}
		if strings.Contains(err.Error(), "sk-wrong-key-99999") {
			t.Error("the key appears in the error")
		}
		if st := fs.Stats(); st.Unauthorized != 1 || st.Requests != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("undecodable image", func(t *testing.T) {
		fs, srv := start(t, Options{})
		bad := llm.Request{Parts: []llm.Part{{Text: "Describe."}, {Image: &llm.Image{MIME: "image/jpeg", Data: []byte("not an image at all"), Width: 10, Height: 10}}}}
		_, err := client(t, srv.URL+"/v1", true, key, 5*time.Second).Complete(ctx, bad)
		if e := llmtest.Kind(t, err, llm.Permanent); e.Status != 400 || e.Code != "invalid_image_url" {
			t.Errorf("bad image: %+v", e)
		}
		if st := fs.Stats(); st.BadRequests != 1 || st.Images != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer to %q is not JSON: %q", body, b)
	}
	return resp.StatusCode, m
}

// TestValidatesRequestsLikeAProvider: malformed requests get 400 with an
// OpenAI-style error naming the parameter.
func TestValidatesRequestsLikeAProvider(t *testing.T) {
	fs, srv := start(t, Options{})
	url := srv.URL + "/chat/completions"
	cases := []struct{ body, param string }{
		{`{"model":`, ""},
		{`{"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{`{"model":"m","messages":[]}`, "messages"},
		{`{"model":"m","messages":[{"role":"wizard","content":"hi"}]}`, "messages.[0].role"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}}]}]}`, "messages.[0].content.[0].image_url"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!"}}]}]}`, "messages.[0].content.[0].image_url"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"audio"}]}]}`, "messages.[0].content.[0].type"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}`, "response_format.type"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`, "stream"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}`, "max_completion_tokens"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`, "response_format.json_schema"},
	}
	for _, c := range cases {
		status, m := post(t, url, c.body)
		e, _ := m["error"].(map[string]any)
		if status != 400 || e == nil || e["message"] == "" || e["type"] != "invalid_request_error" {
			t.Errorf("%s: %d %v", c.body, status, m)
			continue
		}
		if c.param != "" && e["param"] != c.param {
			t.Errorf("%s: param %v, want %s", c.body, e["param"], c.param)
		}
	}
	if st := fs.Stats(); st.BadRequests != int64(len(cases)) || st.OK != 0 {
		t.Errorf("stats %+v", st)
	}
	// A valid request without response_format answers a contract digest.
	status, m := post(t, url, `{"model":"m","messages":[{"role":"user","content":"Summarize."}],"max_completion_tokens":2000}`)
	if status != 200 {
		t.Fatalf("valid request: %d %v", status, m)
	}
	content := m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	digest, err := prompts.Load(prompts.Summary)
	if err != nil {
		t.Fatal(err)
	}
	if err := digest.Validate([]byte(content)); err != nil {
		t.Errorf("default answer is not a contract digest: %v", err)
	}
	// A small max_completion_tokens cuts the answer off, as a model would.
	_, m = post(t, url, `{"model":"m","messages":[{"role":"user","content":"Summarize."}],"max_tokens":10}`)
	ch := m["choices"].([]any)[0].(map[string]any)
	if ch["finish_reason"] != "length" || len(ch["message"].(map[string]any)["content"].(string)) != 40 {
		t.Errorf("max_tokens 10: %v", ch)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// TestFaultDrawsAreSeededAndFollowTheRates: the same seed gives the same
// fault sequence; the mix follows the rates.
func TestFaultDrawsAreSeededAndFollowTheRates(t *testing.T) {
	seq := func(seed int64) (string, Stats) {
		fs, srv := start(t, Options{Rate429: 0.1, Rate500: 0.1, RateGarbage: 0.1, Seed: seed})
		var b strings.Builder
		for range 300 {
			resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 200 && json.Valid(body):
				b.WriteByte('.')
			case resp.StatusCode == 200:
				b.WriteByte('g')
			default:
				b.WriteString(resp.Status[:3])
			}
		}
		return b.String(), fs.Stats()
	}
	a, st := seq(7)
	b, _ := seq(7)
	c, _ := seq(8)
	if a != b {
		t.Error("the same seed gave different fault sequences")
	}
	if a == c {
		t.Error("different seeds gave the same fault sequence")
	}
	for name, n := range map[string]int64{"429": st.RateLimited, "500": st.ServerErrors, "garbage": st.Garbage} {
		// Expected about 300 × 0.1 × (earlier draws missed) ≈ 24-30.
		if n < 12 || n > 50 {
			t.Errorf("%s: %d of 300 at rate 0.1", name, n)
		}
	}
	if st.OK+st.Faults() != 300 || st.Hangs != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestLatencyAndConcurrency: requests wait about Latency, and run side by
// side (MaxInFlight reaches the number sent at once).
func TestLatencyAndConcurrency(t *testing.T) {
	fs, srv := start(t, Options{Latency: 100 * time.Millisecond, Jitter: 20 * time.Millisecond})
	c := client(t, srv.URL+"/v1", true, "", 5*time.Second)
	_, req := templateRequest(t, prompts.SummaryMap)
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := c.Complete(context.Background(), req); errs <- err }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := fs.Stats()
	if st.OK != 8 || st.MaxInFlight < 2 {
		t.Errorf("stats %+v", st)
	}
	if mean := st.Busy / 8; mean < 80*time.Millisecond {
		t.Errorf("mean time in the server %s, want about 100ms ± 20ms", mean)
	}
}

// TestGenerateFollowsSchemaKeywords covers keywords our own schemas do not
// use: refs, enums, consts, bounds, formats and map-like objects.
func TestGenerateFollowsSchemaKeywords(t *testing.T) {
	schema := json.RawMessage(`{
	  "$defs": {"party": {"type": "object", "required": ["name"], "additionalProperties": false,
	     "properties": {"name": {"type": "string", "minLength": 3, "maxLength": 5}}}},
	  "type": "object", "additionalProperties": false,
	  "required": ["kind", "v", "score", "when", "parties", "tags", "extra", "nothing", "maybe"],
	  "properties": {
	    "kind": {"enum": ["lease", "loan"]},
	    "v": {"const": 2},
	    "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
	    "count": {"type": "integer", "minimum": 10, "maximum": 12},
	    "when": {"type": "string", "format": "date"},
	    "parties": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"$ref": "#/$defs/party"}},
	    "tags": {"type": "array", "maxItems": 0, "items": {"type": "string"}},
	    "extra": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "boolean"}},
	    "nothing": {"type": "null"},
	    "maybe": {"type": ["null", "string"], "maxLength": 4}
	  }}`)
	doc, err := Generate(schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := prompts.Validate(schema, doc); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if _, err := Generate(json.RawMessage(`{"$ref": "#"}`)); err == nil {
		t.Error("a self-referencing schema did not fail")
	}
}
