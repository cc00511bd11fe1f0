package fakeserver

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // image parts
	_ "image/jpeg" // image parts
	_ "image/png"  // image parts
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	_ "golang.org/x/image/bmp"  // image parts
	_ "golang.org/x/image/webp" // image parts

	"github.com/llamapipe/llamapipe/prompts"
)

// DefaultModel is the model reported when Options.Model is empty.
const DefaultModel = "llama-4-scout"

// MaxBodyBytes is the largest request body accepted (larger: 413).
const MaxBodyBytes = 64 << 20

// Options configure a Server. The zero value answers every valid request at
// once, without faults and without a key.
type Options struct {
	// Latency is how long each request takes before it is answered, and
	// Jitter spreads it uniformly by ± Jitter (never below zero). Default 0.
	// Answers to hung requests and 429s do not wait.
	Latency, Jitter time.Duration
	// Rate429, Rate500, RateHang and RateGarbage are fault probabilities in
	// [0, 1], drawn independently in that order for every valid request; the
	// first that hits wins. 429 carries Retry-After: 1 (RetryAfter); a hang
	// holds the request until the client gives up (or Close); garbage is a
	// 200 whose body is a truncated answer or not JSON at all. Default 0.
	Rate429, Rate500, RateHang, RateGarbage float64
	// RetryAfter is the Retry-After of 429 answers, in whole seconds.
	// Default 1s.
	RetryAfter time.Duration
	// Seed makes the sequence of fault and jitter draws deterministic: the
	// n-th request to be drawn for gets the n-th draws. Default 0 (itself a
	// fixed seed).
	Seed int64
	// APIKey, when set, is required as "Authorization: Bearer <APIKey>";
	// other requests get 401 invalid_api_key. Default "": no key needed.
	APIKey string
	// Model is the model named in answers. Default DefaultModel.
	Model string
}

// Stats counts what a Server did. Every request to a chat-completions path
// is in Requests, and in exactly one of the other answer counters.
type Stats struct {
	// Requests is every request to a chat-completions path.
	Requests int64
	// OK is answers with a valid completion.
	OK int64
	// RateLimited (429), ServerErrors (500), Hangs and Garbage are the
	// injected faults.
	RateLimited, ServerErrors, Hangs, Garbage int64
	// BadRequests is 4xx answers to invalid requests (400, 405, 413);
	// Unauthorized is 401s for a missing or wrong key.
	BadRequests, Unauthorized int64
	// Canceled is requests the client gave up on during the latency.
	Canceled int64
	// Images is the image parts (data URLs) decoded in valid requests.
	Images int64
	// PromptTokens and CompletionTokens sum the usage of OK answers.
	PromptTokens, CompletionTokens int64
	// MaxInFlight is the most requests handled at the same time.
	MaxInFlight int64
	// Busy is the total time requests spent in the server (sum over
	// requests), for mean-latency checks.
	Busy time.Duration
}

// Faults is the number of injected faults.
func (s Stats) Faults() int64 { return s.RateLimited + s.ServerErrors + s.Hangs + s.Garbage }

// Server is the fake provider. It is safe for concurrent use.
type Server struct {
	opts  Options
	model string

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	closeOnce sync.Once
	closed    chan struct{}

	seq      atomic.Int64
	inFlight atomic.Int64
	statsMu  sync.Mutex
	stats    Stats
}

var _ http.Handler = (*Server)(nil)

// New returns a Server.
func New(opts Options) *Server {
	seed := uint64(opts.Seed)
	return &Server{
		opts:   opts,
		model:  cmp.Or(opts.Model, DefaultModel),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		closed: make(chan struct{}),
	}
}

// Close releases hung requests (call it before closing an httptest.Server,
// whose Close waits for them). The Server keeps answering other requests.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

func (s *Server) count(f func(*Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// fault kinds.
type fault int

const (
	faultNone fault = iota
	fault429
	fault500
	faultHang
	faultGarbage
)

// draw takes one request's fault and delay, in a fixed order of draws.
func (s *Server) draw() (fault, time.Duration, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p429, p500, pHang, pGarbage := s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
	j := s.rng.Float64()*2 - 1
	variant := s.rng.Uint64()
	d := s.opts.Latency + time.Duration(j*float64(s.opts.Jitter))
	d = max(d, 0)
	switch {
	case p429 < s.opts.Rate429:
		return fault429, d, variant
	case p500 < s.opts.Rate500:
		return fault500, d, variant
	case pHang < s.opts.RateHang:
		return faultHang, d, variant
	case pGarbage < s.opts.RateGarbage:
		return faultGarbage, d, variant
	}
	return faultNone, d, variant
}

// ServeHTTP answers chat completions.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimRight(r.URL.Path, "/")
	if path != "/v1/chat/completions" && path != "/chat/completions" {
		WriteError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "", fmt.Sprintf("Unknown request URL: %s %s", r.Method, r.URL.Path))
		return
	}
	start := time.Now()
	n := s.inFlight.Add(1)
	defer func() {
		s.inFlight.Add(-1)
		busy := time.Since(start)
		s.count(func(st *Stats) { st.Busy += busy })
	}()
	s.count(func(st *Stats) {
		st.Requests++
		st.MaxInFlight = max(st.MaxInFlight, n)
	})
	if r.Method != http.MethodPost {
		s.count(func(st *Stats) { st.BadRequests++ })
		w.Header().Set("Allow", http.MethodPost)
		WriteError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "", "Only POST is supported on "+r.URL.Path)
		return
	}
	if s.opts.APIKey != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.opts.APIKey)) != 1 {
			s.count(func(st *Stats) { st.Unauthorized++ })
			WriteError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		s.count(func(st *Stats) { st.BadRequests++ })
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", "", fmt.Sprintf("Request body too large: the limit is %d bytes", MaxBodyBytes))
			return
		}
		WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "", "Could not read the request body")
		return
	}
	req, verr := parseRequest(body)
	if verr != nil {
		s.count(func(st *Stats) { st.BadRequests++ })
		WriteError(w, http.StatusBadRequest, "invalid_request_error", verr.code, verr.param, verr.msg)
		return
	}
	s.count(func(st *Stats) { st.Images += int64(req.images) })

	f, delay, variant := s.draw()
	if f == fault429 {
		s.count(func(st *Stats) { st.RateLimited++ })
		secs := int(cmp.Or(s.opts.RetryAfter, time.Second).Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(max(secs, 1)))
		WriteError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "",
			"Rate limit reached for requests per minute. Please try again in 1s.")
		return
	}
	if f == faultHang {
		s.count(func(st *Stats) { st.Hangs++ })
		select {
		case <-r.Context().Done():
		case <-s.closed:
			WriteError(w, http.StatusServiceUnavailable, "server_error", "", "", "The server is shutting down")
		}
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.count(func(st *Stats) { st.Canceled++ })
			return
		}
	}
	if f == fault500 {
		s.count(func(st *Stats) { st.ServerErrors++ })
		WriteError(w, http.StatusInternalServerError, "server_error", "", "", "The server had an error while processing your request. Sorry about that!")
		return
	}

	content, finish, completion := req.reply()
	id := s.seq.Add(1)
	resp := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake-%d", id),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   s.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": finish,
			"logprobs":      nil,
		}},
		"usage": map[string]any{
			"prompt_tokens":     req.promptTokens,
			"completion_tokens": completion,
			"total_tokens":      req.promptTokens + completion,
		},
	}
	out, err := json.Marshal(resp)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, "server_error", "", "", "encode answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f == faultGarbage {
		s.count(func(st *Stats) { st.Garbage++ })
		if variant%2 == 0 {
			out = out[:len(out)/2] // cut off mid-answer
		} else {
			w.Header().Set("Content-Type", "text/html")
			out = []byte("<html><body><h1>502 Bad Gateway</h1>upstream connect error</body></html>")
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return
	}
	s.count(func(st *Stats) {
		st.OK++
		st.PromptTokens += int64(req.promptTokens)
		st.CompletionTokens += int64(completion)
	})
	_, _ = w.Write(out)
}

// WriteError writes an OpenAI-style error answer.
func WriteError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// request is a validated chat completion request.
type request struct {
	schemaName string
	schema     json.RawMessage // nil: look in the system prompt
	system     string
	// user is the text of the user messages: quotes are taken from it.
	user         string
	maxTokens    int
	promptTokens int
	images       int
}

type validationError struct{ code, param, msg string }

func invalid(param, format string, args ...any) *validationError {
	return &validationError{param: param, msg: fmt.Sprintf(format, args...)}
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type wirePart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

type wireRequest struct {
	Model          string        `json:"model"`
	Messages       []wireMessage `json:"messages"`
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	Stream              bool `json:"stream"`
	N                   *int `json:"n"`
}

// Token accounting: characters / 4, images by 336-pixel tiles (Llama 4's
// tiling: 144 tokens a tile, at most 16, plus a global tile when tiled).
const (
	charsPerToken   = 4
	messageOverhead = 4
)

func tokens(s string) int { return (utf8.RuneCountInString(s) + charsPerToken - 1) / charsPerToken }

// ImageTokens is what the fake charges for an image of w×h pixels: 336-px
// tiles of 144 tokens (at most 16, plus a thumbnail tile when there are
// several) and 8 more.
func ImageTokens(w, h int) int {
	const side, perTile, maxTiles = 336, 144, 16
	tiles := min(((w+side-1)/side)*((h+side-1)/side), maxTiles)
	if tiles > 1 {
		tiles++
	}
	return tiles*perTile + 8
}

func parseRequest(body []byte) (*request, *validationError) {
	var wr wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&wr); err != nil {
		return nil, &validationError{code: "invalid_json", msg: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)"}
	}
	if strings.TrimSpace(wr.Model) == "" {
		return nil, invalid("model", "you must provide a model parameter")
	}
	if len(wr.Messages) == 0 {
		return nil, invalid("messages", "[] is too short - 'messages'")
	}
	if wr.Stream {
		return nil, invalid("stream", "Streaming is not supported by this server.")
	}
	if wr.N != nil && *wr.N != 1 {
		return nil, invalid("n", "Only n = 1 is supported by this server, got %d.", *wr.N)
	}
	req := &request{}
	for _, v := range []*int{wr.MaxTokens, wr.MaxCompletionTokens} {
		if v != nil {
			if *v < 1 {
				return nil, invalid("max_completion_tokens", "max_completion_tokens must be at least 1, got %d", *v)
			}
			req.maxTokens = *v
		}
	}
	for i, m := range wr.Messages {
		param := fmt.Sprintf("messages.[%d]", i)
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return nil, invalid(param+".role", "Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", m.Role)
		}
		req.promptTokens += messageOverhead
		text, vErr := req.content(param, m.Content)
		if vErr != nil {
			return nil, vErr
		}
		if m.Role == "system" || m.Role == "developer" {
			req.system += text
		}
		if m.Role == "user" {
			req.user += text + "\n"
		}
	}
	if rf := wr.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			if rf.JSONSchema == nil || rf.JSONSchema.Name == "" {
				return nil, invalid("response_format.json_schema", "Missing required parameter: 'response_format.json_schema.name'.")
			}
			req.schemaName = rf.JSONSchema.Name
			if len(rf.JSONSchema.Schema) > 0 {
				var probe map[string]any
				if json.Unmarshal(rf.JSONSchema.Schema, &probe) != nil {
					return nil, invalid("response_format.json_schema.schema", "Invalid schema for response_format '%s': not a JSON object.", rf.JSONSchema.Name)
				}
				req.schema = rf.JSONSchema.Schema
			}
		default:
			return nil, invalid("response_format.type", "Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", rf.Type)
		}
	}
	return req, nil
}

// content validates one message's content (a string or an array of parts),
// counts its tokens and images, and returns its text.
func (req *request) content(param string, raw json.RawMessage) (string, *validationError) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		req.promptTokens += tokens(s)
		return s, nil
	}
	var parts []wirePart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", invalid(param+".content", "Invalid type for '%s.content': expected a string or an array of content parts.", param)
	}
	if len(parts) == 0 {
		return "", invalid(param+".content", "[] is too short - '%s.content'", param)
	}
	var text strings.Builder
	for j, p := range parts {
		pp := fmt.Sprintf("%s.content.[%d]", param, j)
		switch p.Type {
		case "text":
			req.promptTokens += tokens(p.Text)
			text.WriteString(p.Text)
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return "", invalid(pp+".image_url", "Missing required parameter: '%s.image_url.url'.", pp)
			}
			switch p.ImageURL.Detail {
			case "", "auto", "low", "high":
			default:
				return "", invalid(pp+".image_url.detail", "Invalid value: '%s'. Supported values are: 'auto', 'low' and 'high'.", p.ImageURL.Detail)
			}
			w, h, err := decodeDataURL(p.ImageURL.URL)
			if err != nil {
				return "", &validationError{code: "invalid_image_url", param: pp + ".image_url", msg: "Invalid image: " + err.Error()}
			}
			req.images++
			req.promptTokens += ImageTokens(w, h)
		default:
			return "", invalid(pp+".type", "Invalid value: '%s'. Supported values are: 'text' and 'image_url'.", p.Type)
		}
	}
	return text.String(), nil
}

// decodeDataURL checks a data:image/...;base64,... URL and returns the
// image's size.
func decodeDataURL(u string) (int, int, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return 0, 0, errors.New("only data URLs (data:image/...;base64,...) are accepted by this server")
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") || !strings.HasPrefix(meta, "image/") {
		return 0, 0, errors.New("the data URL must be data:image/<type>;base64,<data>")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return 0, 0, errors.New("the image data is not valid base64")
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0, fmt.Errorf("the image could not be decoded (%v)", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, errors.New("the image has no pixels")
	}
	return cfg.Width, cfg.Height, nil
}

// answer is the content of the assistant message: JSON valid for the
// requested schema.
func (req *request) answer() string {
	schema := req.schema
	if schema == nil {
		schema = schemaInText(req.system)
	}
	if schema == nil {
		schema, _ = prompts.SchemaJSON(prompts.SchemaContractDigest)
	}
	doc, err := GenerateQuoting(schema, req.user)
	if err != nil {
		doc, _ = json.Marshal(map[string]string{"answer": "synthetic answer"})
	}
	return string(doc)
}

// schemaInText finds a JSON schema written into a prompt (as clients
// without structured output do: "... follow this JSON schema:\n{...}").
func schemaInText(s string) json.RawMessage {
	i := strings.LastIndex(strings.ToLower(s), "schema")
	if i < 0 {
		return nil
	}
	j := strings.IndexByte(s[i:], '{')
	if j < 0 {
		return nil
	}
	var raw json.RawMessage
	if json.NewDecoder(strings.NewReader(s[i+j:])).Decode(&raw) != nil {
		return nil
	}
	var probe map[string]any
	if json.Unmarshal(raw, &probe) != nil {
		return nil
	}
	if _, ok := probe["type"]; !ok {
		if _, ok := probe["properties"]; !ok {
			return nil
		}
	}
	return raw
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}
