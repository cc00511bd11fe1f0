package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
)

// Request bodies as clients sent them before jobs.Spec, and the canonical
// form the Idempotency-Key records held for them (json.Marshal of the
// request, as read and after the defaults): both unchanged.
var goldenSubmits = []struct {
	body, read, defaulted string
	want                  SubmitRequest
}{
	{
		body:      `{"sources":["s3://in/docs"],"out":"s3://out/x"}`,
		read:      `{"sources":["s3://in/docs"],"out":"s3://out/x"}`,
		defaulted: `{"sources":["s3://in/docs"],"out":"s3://out/x","task":"auto","queue":"default","language":"en"}`,
		want:      SubmitRequest{Spec: jobs.Spec{Sources: []string{"s3://in/docs"}, Out: "s3://out/x"}},
	},
	{
		body:      `{"sources":["s3://in/docs","s3://in/more"],"out":"s3://out/x","task":"summarize","queue":"nightly","language":"pt-BR","include":["**/*.pdf"],"exclude":["old/**"],"force":true,"webhook":"https://hooks.example.com/llamapipe/x","profile":"groq","model_mode":"auto"}`,
		read:      `{"sources":["s3://in/docs","s3://in/more"],"out":"s3://out/x","task":"summarize","queue":"nightly","language":"pt-BR","include":["**/*.pdf"],"exclude":["old/**"],"force":true,"webhook":"https://hooks.example.com/llamapipe/x","profile":"groq","model_mode":"auto"}`,
		defaulted: `{"sources":["s3://in/docs","s3://in/more"],"out":"s3://out/x","task":"auto","queue":"default","language":"en","include":["**/*.pdf"],"exclude":["old/**"],"force":true,"webhook":"https://hooks.example.com/llamapipe/x","profile":"groq","model_mode":"auto"}`,
		want: SubmitRequest{Profile: "groq", Spec: jobs.Spec{Sources: []string{"s3://in/docs", "s3://in/more"}, Out: "s3://out/x",
			Task: "summarize", Queue: "nightly", Options: jobs.Options{Language: "pt-BR", ModelMode: "auto"},
			Include: []string{"**/*.pdf"}, Exclude: []string{"old/**"}, Force: true, Webhook: "https://hooks.example.com/llamapipe/x"}},
	},
	{ // --keep-text through the API
		body:      `{"sources":["s3://in/docs"],"out":"s3://out/x","keep_text":true}`,
		read:      `{"sources":["s3://in/docs"],"out":"s3://out/x","keep_text":true}`,
		defaulted: `{"sources":["s3://in/docs"],"out":"s3://out/x","task":"auto","queue":"default","language":"en","keep_text":true}`,
		want:      SubmitRequest{Spec: jobs.Spec{Sources: []string{"s3://in/docs"}, Out: "s3://out/x", Options: jobs.Options{KeepText: true}}},
	},
	{ // a fallback chain through the API
		body:      `{"sources":["s3://in/docs"],"out":"s3://out/x","fallback":["together","openrouter"]}`,
		read:      `{"sources":["s3://in/docs"],"out":"s3://out/x","fallback":["together","openrouter"]}`,
		defaulted: `{"sources":["s3://in/docs"],"out":"s3://out/x","task":"auto","queue":"default","language":"en","fallback":["together","openrouter"]}`,
		want:      SubmitRequest{Spec: jobs.Spec{Sources: []string{"s3://in/docs"}, Out: "s3://out/x", Options: jobs.Options{Fallback: []string{"together", "openrouter"}}}},
	},
}

func TestSubmitBodiesReadAsBefore(t *testing.T) {
	for _, g := range goldenSubmits {
		var req SubmitRequest
		r := httptest.NewRequest("POST", "/v1/batches", strings.NewReader(g.body))
		if code, err := decode(r, &req, false); err != nil {
			t.Fatalf("%s: %d %v", g.body, code, err)
		}
		if !reflect.DeepEqual(req, g.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", g.body, req, g.want)
		}
		if b, _ := json.Marshal(req); string(b) != g.read {
			t.Errorf("canonical form %s, want %s", b, g.read)
		}
		req.Task, req.Queue, req.Language = jobs.TaskAuto, jobs.QueueDefault, "en"
		if b, _ := json.Marshal(req); string(b) != g.defaulted {
			t.Errorf("canonical form after defaults %s, want %s", b, g.defaulted)
		}
	}
}

// The Spec's other fields are the server's: a body naming one is refused,
// as it always was.
func TestSubmitRefusesTheServersFields(t *testing.T) {
	for _, field := range []string{`"tenant":"beta"`, `"provider":"openai"`, `"model":"x"`, `"max_size":1`, `"max_retry":1`,
		`"products":"/etc/passwd"`, `"max_output_tokens":9`, `"options":{"language":"de"}`} {
		var req SubmitRequest
		r := httptest.NewRequest("POST", "/v1/batches", strings.NewReader(`{"sources":["/in"],"out":"/out",`+field+`}`))
		if code, err := decode(r, &req, false); code != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s: %d %v, want 400 unknown field", field, code, err)
		}
	}
}

// A submit's batch record is the client's Spec with the server's parts:
// the token's tenant, the Defaults' model and limits.
func TestSubmitRecordsTheSpec(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Defaults = ingest.Options{Spec: jobs.Spec{Provider: "offline", Model: "llama-4-scout", MaxSize: 1 << 20, MaxRetry: 2,
			Options: jobs.Options{MaxOutputTokens: 123}}}
	})
	body := map[string]any{"sources": []string{e.src}, "out": e.out, "task": "summarize", "queue": "nightly", "language": "de",
		"include": []string{"contracts/**"}, "exclude": []string{"*.md"}, "force": true, "model_mode": "auto"}
	var res SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, nil, &res); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	b, err := e.tracker.Get(context.Background(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := jobs.Spec{Sources: []string{e.src}, Out: e.out, Task: "summarize", Queue: "nightly",
		Options: jobs.Options{Language: "de", MaxOutputTokens: 123, ModelMode: "auto"},
		Include: []string{"contracts/**"}, Exclude: []string{"*.md"}, MaxSize: 1 << 20, MaxRetry: 2, Force: true,
		Provider: "offline", Model: "llama-4-scout", Tenant: "acme"}
	if !reflect.DeepEqual(b.Spec, want) {
		t.Errorf("recorded spec\n got %+v\nwant %+v", b.Spec, want)
	}
}

// A fallback chain names known presets, each once; the API refuses the rest.
func TestSubmitRefusesUnknownFallback(t *testing.T) {
	e := newEnv(t)
	for _, fb := range [][]string{{"no-such-preset"}, {"groq", "groq"}} {
		body := map[string]any{"sources": []string{e.src}, "out": e.out, "fallback": fb}
		var er struct{ Error string }
		if code := e.do("POST", "/v1/batches", tokenA, body, nil, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, "fallback") {
			t.Errorf("fallback %v: %d %q, want 400 naming the fallback", fb, code, er.Error)
		}
	}
}
