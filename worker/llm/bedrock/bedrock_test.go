package bedrock

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

const okAnswer = `{"output":{"message":{"role":"assistant","content":[{"text":"Two pages: a lease between A and B."}]}},"stopReason":"end_turn","usage":{"inputTokens":1234,"outputTokens":56,"totalTokens":1290},"metrics":{"latencyMs":812}}`

type seen struct {
	path, auth string
	body       map[string]any
}

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Pointer[seen]) {
	t.Helper()
	var last atomic.Pointer[seen]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s := &seen{path: r.URL.Path, auth: r.Header.Get("Authorization")}
		if err := json.Unmarshal(raw, &s.body); err != nil {
			t.Errorf("request body is not JSON: %v", err)
		}
		last.Store(s)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

// awsError answers like Bedrock's REST-JSON protocol.
func awsError(status int, code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-ErrorType", code+":http://internal.amazon.com/coral/com.amazon.bedrock/")
		w.Header().Set("X-Amzn-RequestId", "11111111-2222-3333-4444-555555555555")
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"message": msg})
		_, _ = w.Write(b)
	}
}

func ok(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, okAnswer)
}

func client(t *testing.T, preset, endpoint string, timeout time.Duration) *Client {
	t.Helper()
	// Keep the test away from any real AWS configuration on the machine.
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	c, err := New(context.Background(), Options{
		Profile:     llm.Builtins()[preset],
		Endpoint:    endpoint,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTESTTESTTEST", "secretsecretsecret", ""),
		Timeout:     timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConverseRequestShape(t *testing.T) {
	srv, last := server(t, ok)
	c := client(t, "bedrock-scout", srv.URL, 5*time.Second)
	tmp := 0.25
	img := llmtest.JPEG(t, 33, 17)
	resp, err := c.Complete(context.Background(), llm.Request{
		System:          "Summarise contracts.",
		Parts:           []llm.Part{{Text: "Page 1 text", Document: true}, {Image: img}},
		MaxOutputTokens: 700,
		Temperature:     &tmp,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := last.Load()
	if want := "/model/us.meta.llama4-scout-17b-instruct-v1:0/converse"; s.path != want {
		t.Errorf("path %q, want %q", s.path, want)
	}
	if !strings.HasPrefix(s.auth, "AWS4-HMAC-SHA256 Credential=AKIDTESTTESTTEST/") || !strings.Contains(s.auth, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("Authorization %q is not a SigV4 signature for bedrock in us-east-1", s.auth)
	}
	b := s.body
	sys := b["system"].([]any)
	if len(sys) != 1 || sys[0].(map[string]any)["text"] != "Summarise contracts." {
		t.Errorf("system %v", sys)
	}
	msgs := b["messages"].([]any)
	m := msgs[0].(map[string]any)
	content := m["content"].([]any)
	if len(msgs) != 1 || m["role"] != "user" || len(content) != 2 {
		t.Fatalf("messages %v", msgs)
	}
	if content[0].(map[string]any)["text"] != "Page 1 text" {
		t.Errorf("text block %v", content[0])
	}
	ib := content[1].(map[string]any)["image"].(map[string]any)
	if ib["format"] != "jpeg" {
		t.Errorf("image format %v", ib["format"])
	}
	data, err := base64.StdEncoding.DecodeString(ib["source"].(map[string]any)["bytes"].(string))
	if err != nil {
		t.Fatalf("image bytes are not base64: %v", err)
	}
	llmtest.CheckImage(t, data, "jpeg", 33, 17)
	ic := b["inferenceConfig"].(map[string]any)
	if ic["maxTokens"] != 700.0 || ic["temperature"] != 0.25 {
		t.Errorf("inferenceConfig %v", ic)
	}
	if resp.Text != "Two pages: a lease between A and B." || resp.FinishReason != "end_turn" {
		t.Errorf("response %+v", resp)
	}
	if resp.Usage.InputTokens != 1234 || resp.Usage.OutputTokens != 56 || resp.Usage.Estimated {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestMaverickModelPath(t *testing.T) {
	srv, last := server(t, ok)
	c := client(t, "bedrock-maverick", srv.URL, 5*time.Second)
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if want := "/model/us.meta.llama4-maverick-17b-instruct-v1:0/converse"; last.Load().path != want {
		t.Errorf("path %q, want %q", last.Load().path, want)
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
		{"throttling", awsError(429, "ThrottlingException", "Too many requests, please wait before trying again."), llm.Retryable, true, "Too many requests"},
		{"quota", awsError(400, "ServiceQuotaExceededException", "quota reached"), llm.Retryable, true, "quota"},
		{"unavailable", awsError(503, "ServiceUnavailableException", "Service unavailable"), llm.Retryable, false, "unavailable"},
		{"internal", awsError(500, "InternalServerException", "boom"), llm.Retryable, false, "boom"},
		{"model timeout", awsError(408, "ModelTimeoutException", "Model has timed out"), llm.Retryable, false, "timed out"},
		{"access denied", awsError(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."), llm.Fatal, false, "access"},
		{"bad signature", awsError(403, "UnrecognizedClientException", "The security token included in the request is invalid."), llm.Fatal, false, "security token"},
		{"unknown model", awsError(404, "ResourceNotFoundException", "Model not found"), llm.Fatal, false, "not found"},
		{"validation", awsError(400, "ValidationException", "Malformed input request, please reformat your input and try again."), llm.Permanent, false, "Malformed"},
		{"validation too long", awsError(400, "ValidationException", "Input is too long for requested model."), llm.TooLarge, false, "too long"},
		{"validation image size", awsError(400, "ValidationException", "The model returned the following errors: Image exceeds max pixels allowed."), llm.TooLarge, false, "max pixels"},
		{"unknown 4xx code", awsError(400, "SomethingNewException", "odd"), llm.Permanent, false, "odd"},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"output":{"message":`)
		}, llm.Retryable, false, ""},
		{"html 502", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}, llm.Retryable, false, ""},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, llm.Retryable, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := server(t, tt.h)
			c := client(t, "bedrock-scout", srv.URL, timeoutFor(tt.name))
			_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}})
			e := llmtest.Kind(t, err, tt.kind)
			if e.RateLimited != tt.limited {
				t.Errorf("RateLimited %v, want %v", e.RateLimited, tt.limited)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "secretsecretsecret") {
				t.Error("error leaks the secret key")
			}
		})
	}
}

func TestUnsupportedImageTypeRefused(t *testing.T) {
	srv, last := server(t, ok)
	c := client(t, "bedrock-scout", srv.URL, time.Second)
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Image: &llm.Image{MIME: "image/bmp", Data: []byte("BM")}}}})
	llmtest.Kind(t, err, llm.Permanent)
	if last.Load() != nil {
		t.Error("request sent for an unsupported image type")
	}
}

func TestNoCredentialsIsFatal(t *testing.T) {
	srv, last := server(t, ok)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	c, err := New(context.Background(), Options{Profile: llm.Builtins()["bedrock-scout"], Endpoint: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "x"}}})
	if e := llmtest.Kind(t, err, llm.Fatal); e.Code != "credentials" {
		t.Errorf("code %q", e.Code)
	}
	if last.Load() != nil {
		t.Error("unsigned request sent")
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
