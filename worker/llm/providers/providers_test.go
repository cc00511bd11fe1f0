package providers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

const secret = "sk-live-abcdef0123456789"

type hit struct {
	path, auth string
	body       map[string]any
}

func fake(t *testing.T, answer string) (*httptest.Server, *atomic.Pointer[hit]) {
	t.Helper()
	var last atomic.Pointer[hit]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		h := &hit{path: r.URL.Path, auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(raw, &h.body)
		last.Store(h)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

const chatAnswer = `{"id":"1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
const dashAnswer = `{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":[{"text":"hello"}]}}]},"usage":{"input_tokens":5,"output_tokens":1},"request_id":"r"}`

func call(t *testing.T, c llm.Client, req llm.Request) llm.Response {
	t.Helper()
	resp, err := c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var textReq = llm.Request{Parts: []llm.Part{{Text: "hi"}}}

func TestPresetWithKeyFromEnv(t *testing.T) {
	srv, last := fake(t, chatAnswer)
	t.Setenv(DefaultAPIKeyEnv, "  "+secret+"\n")
	c, err := Open(context.Background(), Config{Preset: "groq", BaseURL: srv.URL + "/openai/v1", MaxOutputTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	if call(t, c, textReq).Text != "hello" {
		t.Fatal("wrong answer")
	}
	h := last.Load()
	if h.auth != "Bearer "+secret {
		t.Errorf("Authorization %q (key not trimmed?)", h.auth)
	}
	if h.path != "/openai/v1/chat/completions" || h.body["model"] != "meta-llama/llama-4-scout-17b-16e-instruct" {
		t.Errorf("request %s model %v", h.path, h.body["model"])
	}
	if h.body["max_completion_tokens"] != 100.0 {
		t.Errorf("max_completion_tokens %v, want the configured 100", h.body["max_completion_tokens"])
	}
	if p := c.Profile(); p.Preset != "groq" || p.Prices.InputPerMillion == 0 {
		t.Errorf("profile %+v", p)
	}
}

func TestKeyFileAndCustomEnv(t *testing.T) {
	srv, last := fake(t, chatAnswer)
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("\n"+secret+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(DefaultAPIKeyEnv, "wrong-key-from-env")
	c, err := Open(context.Background(), Config{Preset: "reseller", BaseURL: srv.URL, APIKeyFile: file})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	if a := last.Load().auth; a != "Bearer "+secret {
		t.Errorf("Authorization %q, want the file's key", a)
	}
	t.Setenv("MY_QIANFAN_KEY", secret+"2")
	c, err = Open(context.Background(), Config{Preset: "qianfan", BaseURL: srv.URL, APIKeyEnv: "MY_QIANFAN_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	if a := last.Load().auth; a != "Bearer "+secret+"2" {
		t.Errorf("Authorization %q, want MY_QIANFAN_KEY's", a)
	}
}

func TestMissingKeyNamesTheVariable(t *testing.T) {
	t.Setenv(DefaultAPIKeyEnv, "")
	t.Setenv(DashScopeAPIKeyEnv, "")
	_, err := Open(context.Background(), Config{Preset: "together"})
	if err == nil || !strings.Contains(err.Error(), DefaultAPIKeyEnv) {
		t.Fatalf("error %v does not name %s", err, DefaultAPIKeyEnv)
	}
	_, err = Open(context.Background(), Config{Provider: "dashscope"})
	if err == nil || !strings.Contains(err.Error(), DashScopeAPIKeyEnv) {
		t.Fatalf("error %v does not name %s", err, DashScopeAPIKeyEnv)
	}
	_, err = Open(context.Background(), Config{Preset: "groq", APIKeyFile: filepath.Join(t.TempDir(), "absent")})
	if err == nil {
		t.Fatal("missing key file accepted")
	}
}

func TestDashScopeKeyVariable(t *testing.T) {
	srv, last := fake(t, dashAnswer)
	t.Setenv(DefaultAPIKeyEnv, "")
	t.Setenv(DashScopeAPIKeyEnv, secret)
	c, err := Open(context.Background(), Config{Preset: "dashscope-intl", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, llm.Request{Parts: []llm.Part{{Image: llmtest.JPEG(t, 16, 16)}, {Text: "?"}}})
	if h := last.Load(); h.auth != "Bearer "+secret || !strings.HasSuffix(h.path, "/multimodal-generation/generation") {
		t.Errorf("request %s auth %q", h.path, h.auth)
	}
	if c.Profile().TextOnly {
		t.Error("dashscope profile accepts text-only requests")
	}
}

func TestKeylessServers(t *testing.T) {
	srv, last := fake(t, chatAnswer)
	t.Setenv(DefaultAPIKeyEnv, "")
	if _, err := Open(context.Background(), Config{Preset: "vllm", BaseURL: srv.URL + "/v1"}); err == nil || !strings.Contains(err.Error(), "model") {
		t.Fatalf("vllm without a model: %v", err)
	}
	c, err := Open(context.Background(), Config{Preset: "ollama", BaseURL: srv.URL + "/v1", Model: "llama4:scout"})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	if h := last.Load(); h.auth != "" || h.body["model"] != "llama4:scout" {
		t.Errorf("auth %q model %v", h.auth, h.body["model"])
	}
}

func TestProfilesFileOverrides(t *testing.T) {
	srv, last := fake(t, chatAnswer)
	t.Setenv(DefaultAPIKeyEnv, secret)
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	yaml := "profiles:\n  my-proxy:\n    preset: reseller\n    base_url: " + srv.URL + "/api/v1\n    model: llama-4-scout\n    prices: {currency: RUB, input_per_million: 20, output_per_million: 60}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(context.Background(), Config{Preset: "my-proxy", ProfilesFile: file})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	if h := last.Load(); h.path != "/api/v1/chat/completions" || h.body["model"] != "llama-4-scout" {
		t.Errorf("request %s model %v", h.path, h.body["model"])
	}
	p := c.Profile()
	if p.Prices.InputPerMillion != 20 || p.ContextTokens != 327680 {
		t.Errorf("profile %+v: override or inheritance lost", p)
	}
}

func TestBedrockEndpointOverride(t *testing.T) {
	answer := `{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}`
	srv, last := fake(t, answer)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-test")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	c, err := Open(context.Background(), Config{Preset: "bedrock-maverick", Endpoint: srv.URL, Region: "us-west-2"})
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	h := last.Load()
	if !strings.Contains(h.path, "llama4-maverick") || !strings.Contains(h.auth, "/us-west-2/bedrock/") {
		t.Errorf("path %s auth %q", h.path, h.auth)
	}
}

func TestOffline(t *testing.T) {
	t.Setenv(DefaultAPIKeyEnv, "")
	c, err := Open(context.Background(), Config{Provider: "offline"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Profile().Provider != "offline" {
		t.Fatalf("profile %+v", c.Profile())
	}
}

func TestUnknownNames(t *testing.T) {
	if _, err := Open(context.Background(), Config{Preset: "nope"}); err == nil || !strings.Contains(err.Error(), "groq") {
		t.Fatalf("unknown preset: %v (should list the known ones)", err)
	}
	if _, err := Open(context.Background(), Config{Provider: "nope"}); err == nil {
		t.Fatal("unknown provider accepted")
	}
	if _, err := Open(context.Background(), Config{Provider: "openai", Preset: "dashscope"}); err == nil {
		t.Fatal("provider/preset mismatch accepted")
	}
}

func TestSharedRateLimitIsApplied(t *testing.T) {
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis/MinIO: run the tests with `make test`")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	srv, _ := fake(t, chatAnswer)
	t.Setenv(DefaultAPIKeyEnv, secret)
	cfg := Config{Preset: "groq", BaseURL: srv.URL, Redis: rdb, RPM: 1, RateLimitKey: "llamapipe:test:providers:" + time.Now().Format(time.RFC3339Nano)}
	c, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, textReq)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Complete(ctx, textReq); !llm.IsRateLimited(err) {
		t.Fatalf("second call within the minute: %v, want rate-limited", err)
	}
}

func TestOpenBatchFollowsTheProfilesBatchAPI(t *testing.T) {
	t.Setenv(DefaultAPIKeyEnv, "sk-batch")
	c, err := OpenBatch(context.Background(), Config{Preset: "groq"}, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*batchapi.OpenAI); !ok {
		t.Errorf("groq's batch API is %T, want the OpenAI-style Batch API", c)
	}
	if _, err := OpenBatch(context.Background(), Config{Provider: "offline"}, BatchOptions{}); !errors.Is(err, ErrNoBatchAPI) {
		t.Errorf("offline: %v, want ErrNoBatchAPI", err)
	}
	if _, err := OpenBatch(context.Background(), Config{Preset: "bedrock-scout"}, BatchOptions{}); err == nil || !strings.Contains(err.Error(), "--batch-role-arn") {
		t.Errorf("bedrock without a work location and role: %v", err)
	}
}

func TestCheckFallbacks(t *testing.T) {
	if err := CheckFallbacks("", []string{"together", "openrouter"}); err != nil {
		t.Fatalf("known presets refused: %v", err)
	}
	for _, names := range [][]string{{"no-such-preset"}, {"together", "together"}} {
		if err := CheckFallbacks("", names); err == nil {
			t.Errorf("%v accepted", names)
		}
	}
}

// Images go by URL only where the provider fetches them: every DashScope
// preset prefers url (without requiring it), every OpenAI-compatible
// preset stays inline, and an OpenAI-compatible client sends a data URI
// even for an image that could be presigned.
func TestImageTransportDefaults(t *testing.T) {
	for name, p := range llm.Builtins() {
		got, err := Profile(Config{Preset: name, Model: "llama-4-scout"}) // vllm and ollama name none
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := llm.ImageTransportOf(got)
		switch p.Provider {
		case llm.ProviderDashScope:
			if want != llm.ImageURL || got.ImageURLRequired {
				t.Errorf("%s: transport %q (required %v), want url preferred", name, want, got.ImageURLRequired)
			}
		default:
			if want != llm.ImageInline || got.ImageURLRequired {
				t.Errorf("%s (%s): transport %q, want inline", name, p.Provider, want)
			}
		}
	}
	srv, last := fake(t, chatAnswer)
	t.Setenv(DefaultAPIKeyEnv, secret)
	c, err := Open(context.Background(), Config{Preset: "groq", BaseURL: srv.URL + "/openai/v1"})
	if err != nil {
		t.Fatal(err)
	}
	img := llmtest.JPEG(t, 20, 10)
	presigned := 0
	img.Presign = func(context.Context, time.Duration) (string, error) {
		presigned++
		return "https://bucket.example/img.jpg?X-Amz-Signature=abc", nil
	}
	call(t, c, llm.Request{Parts: []llm.Part{{Text: "caption"}, {Image: img}}})
	parts := last.Load().body["messages"].([]any)[0].(map[string]any)["content"].([]any)
	var sent string
	for _, p := range parts {
		if iu, ok := p.(map[string]any)["image_url"].(map[string]any); ok {
			sent = iu["url"].(string)
		}
	}
	llmtest.CheckDataURL(t, sent, "image/jpeg", 20, 10)
	if presigned != 0 {
		t.Error("the OpenAI-compatible client presigned a URL")
	}
}

// --image-transport: url is required when given, refused for a provider
// that takes images inline; a profiles file may set image_transport, but
// not url for an OpenAI-compatible profile.
func TestImageTransportOverride(t *testing.T) {
	p, err := Profile(Config{Preset: "dashscope", ImageTransport: "url"})
	if err != nil || p.ImageTransport != llm.ImageURL || !p.ImageURLRequired {
		t.Errorf("dashscope --image-transport url: %+v %v, want url required", p, err)
	}
	if p, err = Profile(Config{Preset: "dashscope-intl", ImageTransport: "inline"}); err != nil || llm.ImageTransportOf(p) != llm.ImageInline {
		t.Errorf("dashscope-intl --image-transport inline: %q %v", p.ImageTransport, err)
	}
	if _, err := Profile(Config{Preset: "groq", ImageTransport: "url"}); err == nil || !strings.Contains(err.Error(), "only the dashscope provider") {
		t.Errorf("groq --image-transport url: %v, want refused", err)
	}
	if _, err := Profile(Config{Preset: "dashscope", ImageTransport: "s3"}); err == nil {
		t.Error("--image-transport s3 accepted")
	}
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	write := func(y string) {
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("profiles:\n  dashscope:\n    image_transport: inline\n")
	if p, err := Profile(Config{Preset: "dashscope", ProfilesFile: file}); err != nil || llm.ImageTransportOf(p) != llm.ImageInline {
		t.Errorf("profile image_transport inline: %q %v", p.ImageTransport, err)
	}
	write("profiles:\n  groq:\n    image_transport: url\n")
	if _, err := Profile(Config{Preset: "groq", ProfilesFile: file}); err == nil || !strings.Contains(err.Error(), "image_transport url") {
		t.Errorf("groq profile with image_transport url: %v, want refused", err)
	}
}
