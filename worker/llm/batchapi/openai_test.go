package batchapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi/batchapitest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

const testKey = "sk-batch-test-0123456789"

func openaiProfile(base string) llm.Profile {
	return llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: base, Model: "llama-4-scout", ContextTokens: 131072,
		MaxOutputTokens: 4096, MaxImages: 5, TextOnly: true, JSONSchema: true,
		ImageFormats: []string{"image/jpeg", "image/png"}}
}

func onlineClient(t *testing.T, base, apiKey string) *openai.Client {
	t.Helper()
	c, err := openai.New(openai.Options{Profile: openaiProfile(base), APIKey: apiKey, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// templateRequest is the request a worker builds for a prompt template.
func templateRequest(t testing.TB, name string, i int) llm.Request {
	t.Helper()
	tmpl, err := prompts.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	var data any = prompts.CaptionData{Language: "en"}
	if name == prompts.Summary {
		data = prompts.SummaryData{Language: "en", Title: fmt.Sprintf("contract-%d.txt", i), Pages: 1}
	}
	user, err := tmpl.Render(data)
	if err != nil {
		t.Fatal(err)
	}
	req := llm.Request{System: tmpl.System, Parts: []llm.Part{{Text: user}},
		Schema: &llm.Schema{Name: tmpl.SchemaName, JSON: tmpl.Schema}}
	if name == prompts.Caption {
		req.Parts = append(req.Parts, llm.Part{Image: llmtest.JPEG(t, 64+8*i, 48)})
	} else {
		req.Parts = append(req.Parts, llm.Part{Document: true, Text: fmt.Sprintf("[page 1] Agreement %d between Acme and Beta. ", i) + strings.Repeat("The tenant pays rent monthly. ", 5+i)})
	}
	return req
}

// batchEnv is a fake Batch API, the fake chat server (for the online
// answers to compare with) and the clients.
type batchEnv struct {
	fake   *batchapitest.BatchServer
	online *openai.Client // against the fake chat server
	batch  *OpenAI        // against the fake Batch API
}

func newBatchEnv(t *testing.T, o batchapitest.BatchOptions) *batchEnv {
	t.Helper()
	o.APIKey = testKey
	fb := batchapitest.NewBatch(o)
	bsrv := httptest.NewServer(fb)
	chat := fakeserver.New(fakeserver.Options{APIKey: testKey})
	csrv := httptest.NewServer(chat)
	t.Cleanup(func() { bsrv.Close(); chat.Close(); csrv.Close() })
	bc, err := NewOpenAI(OpenAIOptions{Online: onlineClient(t, bsrv.URL+"/v1", testKey)})
	if err != nil {
		t.Fatal(err)
	}
	return &batchEnv{fake: fb, online: onlineClient(t, csrv.URL+"/v1", testKey), batch: bc}
}

// lines builds n lines alternating summaries and captions; the line at
// badImage (if >= 0) carries an image the provider cannot decode.
func testLines(t *testing.T, n, badImage int) ([]Line, map[string]llm.Request) {
	t.Helper()
	var lines []Line
	reqs := map[string]llm.Request{}
	for i := range n {
		name := prompts.Summary
		if i%2 == 1 {
			name = prompts.Caption
		}
		req := templateRequest(t, name, i)
		if i == badImage {
			req = templateRequest(t, prompts.Caption, i)
			req.Parts[1].Image = &llm.Image{MIME: "image/png", Data: []byte("not a png at all"), Width: 10, Height: 10}
		}
		id := fmt.Sprintf("item%03d-c%d", i, i%3)
		lines = append(lines, Line{CustomID: id, Req: req})
		reqs[id] = req
	}
	return lines, reqs
}

// submitAll packs the lines into one file and submits it.
func submitAll(t *testing.T, c Client, name string, lines []Line) Job {
	t.Helper()
	p := NewPacker(c.Encode, c.Limits())
	for _, l := range lines {
		if cut, err := p.Add(l); err != nil || cut != nil {
			t.Fatalf("add %s: cut %v, err %v", l.CustomID, cut != nil, err)
		}
	}
	f := p.Flush()
	job, err := c.Submit(context.Background(), name, bytes.NewReader(f.Data), f.Lines())
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return job
}

func collect(t *testing.T, c Client, job Job) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for r, err := range c.Results(context.Background(), job) {
		if err != nil {
			t.Fatalf("results: %v", err)
		}
		if _, dup := out[r.CustomID]; dup {
			t.Fatalf("custom id %s returned twice", r.CustomID)
		}
		out[r.CustomID] = r
	}
	return out
}

// TestOpenAIEncodeIsTheOnlineBody: the body of a line is, byte for byte,
// the body the online client posts for the same request.
func TestOpenAIEncodeIsTheOnlineBody(t *testing.T) {
	var mu sync.Mutex
	var posted []byte
	chat := fakeserver.New(fakeserver.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = b
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		chat.ServeHTTP(w, r)
	}))
	defer srv.Close()
	online := onlineClient(t, srv.URL+"/v1", "")
	bc, err := NewOpenAI(OpenAIOptions{Online: online})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{prompts.Summary, prompts.Caption} {
		req := templateRequest(t, name, 3)
		if _, err := online.Complete(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		line, err := bc.Encode(Line{CustomID: "x-1", Req: req})
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			CustomID string          `json:"custom_id"`
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			Body     json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		if l.CustomID != "x-1" || l.Method != "POST" || l.URL != "/v1/chat/completions" {
			t.Errorf("%s: line header %q %q %q", name, l.CustomID, l.Method, l.URL)
		}
		mu.Lock()
		if !bytes.Equal(l.Body, posted) {
			t.Errorf("%s: batch body (%d bytes) differs from the online body (%d bytes)", name, len(l.Body), len(posted))
		}
		mu.Unlock()
	}
	// An invalid request is refused by the same validation as online.
	bad := templateRequest(t, prompts.Caption, 1)
	bad.Parts[1].Image.MIME = "image/tiff"
	if _, err := bc.Encode(Line{CustomID: "bad", Req: bad}); llm.KindOf(err) != llm.Permanent {
		t.Errorf("tiff image: %v, want a permanent llm error", err)
	}
}

// TestOpenAIHappyPath: a batch runs validating → in_progress → finalizing
// → completed; answers equal the online answers; injected failures and an
// undecodable image come back as typed per-line errors.
func TestOpenAIHappyPath(t *testing.T) {
	failing := map[string]bool{"item004-c1": true, "item009-c0": true}
	env := newBatchEnv(t, batchapitest.BatchOptions{FailLine: func(_ int, id string) bool { return failing[id] }})
	lines, reqs := testLines(t, 12, 7)
	ctx := context.Background()
	job := submitAll(t, env.batch, "run1-part1", lines)
	if job.State != StateValidating || job.Name != "run1-part1" || job.InputFile == "" {
		t.Fatalf("submitted job %+v", job)
	}
	for _, err := range env.batch.Results(ctx, job) {
		if !errors.Is(err, ErrNotDone) {
			t.Fatalf("results before the end: %v", err)
		}
	}
	for _, want := range []State{StateInProgress, StateFinalizing, StateCompleted} {
		if _, err := env.fake.Advance(job.ID); err != nil {
			t.Fatal(err)
		}
		got, err := env.batch.Get(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want {
			t.Fatalf("state %s, want %s", got.State, want)
		}
		job = got
	}
	if job.Counts != (Counts{Total: 12, Completed: 9, Failed: 3}) || job.OutputFile == "" || job.ErrorFile == "" {
		t.Fatalf("completed job %+v", job)
	}
	res := collect(t, env.batch, job)
	if len(res) != len(lines) {
		t.Fatalf("%d results for %d lines", len(res), len(lines))
	}
	for _, l := range lines {
		r := res[l.CustomID]
		switch {
		case failing[l.CustomID]:
			var le *LineError
			if !errors.As(r.Err, &le) || le.CustomID != l.CustomID || llm.KindOf(r.Err) != llm.Retryable {
				t.Errorf("%s: %v, want a retryable line error", l.CustomID, r.Err)
			}
		case l.CustomID == "item007-c1":
			if llm.KindOf(r.Err) != llm.Permanent || errors.Is(r.Err, ErrNotAnswered) {
				t.Errorf("undecodable image: %v, want a permanent line error", r.Err)
			}
		default:
			if r.Err != nil {
				t.Errorf("%s: %v", l.CustomID, r.Err)
				continue
			}
			got, err := r.Response(reqs[l.CustomID])
			if err != nil {
				t.Fatalf("%s: %v", l.CustomID, err)
			}
			want, err := env.online.Complete(ctx, reqs[l.CustomID])
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: batch answer differs from the online one:\n%+v\n%+v", l.CustomID, got, want)
			}
			if r.Resp.Usage.InputTokens != want.Usage.InputTokens || r.Resp.FinishReason != "stop" {
				t.Errorf("%s: Resp %+v", l.CustomID, r.Resp.Usage)
			}
		}
	}
}

// TestOpenAIExpiredHalfDone: an expired batch gives the answered lines and
// ErrNotAnswered for the rest, whether the provider lists them in the
// error file (batch_expired) or leaves them out.
func TestOpenAIExpiredHalfDone(t *testing.T) {
	for _, omit := range []bool{false, true} {
		t.Run(fmt.Sprintf("omit=%v", omit), func(t *testing.T) {
			env := newBatchEnv(t, batchapitest.BatchOptions{OmitExpired: omit})
			lines, _ := testLines(t, 10, -1)
			job := submitAll(t, env.batch, "expiring", lines)
			if _, err := env.fake.Advance(job.ID); err != nil {
				t.Fatal(err)
			}
			if err := env.fake.Expire(job.ID, 5); err != nil {
				t.Fatal(err)
			}
			job, err := env.batch.Get(context.Background(), job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if job.State != StateExpired || !job.State.Done() {
				t.Fatalf("state %s", job.State)
			}
			res := collect(t, env.batch, job)
			if len(res) != 10 {
				t.Fatalf("%d results", len(res))
			}
			for i, l := range lines {
				r := res[l.CustomID]
				if i < 5 && (r.Err != nil || !strings.HasPrefix(r.Resp.Text, "{")) {
					t.Errorf("answered line %s: %v %q", l.CustomID, r.Err, r.Resp.Text)
				}
				if i >= 5 && !errors.Is(r.Err, ErrNotAnswered) {
					t.Errorf("unanswered line %s: %v, want ErrNotAnswered", l.CustomID, r.Err)
				}
			}
		})
	}
}

// TestOpenAICancel: a cancelled batch goes cancelling → cancelled, and its
// unanswered lines come back as ErrNotAnswered.
func TestOpenAICancel(t *testing.T) {
	env := newBatchEnv(t, batchapitest.BatchOptions{})
	lines, _ := testLines(t, 4, -1)
	ctx := context.Background()
	job := submitAll(t, env.batch, "to-cancel", lines)
	if _, err := env.fake.Advance(job.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.batch.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if j, err := env.batch.Get(ctx, job.ID); err != nil || j.State != StateCancelling || j.State.Done() {
		t.Fatalf("after cancel: %+v %v", j, err)
	}
	if _, err := env.fake.Advance(job.ID); err != nil {
		t.Fatal(err)
	}
	job, err := env.batch.Get(ctx, job.ID)
	if err != nil || job.State != StateCancelled {
		t.Fatalf("%+v %v", job, err)
	}
	res := collect(t, env.batch, job)
	for _, l := range lines {
		if !errors.Is(res[l.CustomID].Err, ErrNotAnswered) {
			t.Errorf("%s: %v", l.CustomID, res[l.CustomID].Err)
		}
	}
	// Cancelling an ended batch is refused, classified.
	if err := env.batch.Cancel(ctx, job.ID); err == nil || llm.KindOf(err) == 0 {
		t.Errorf("cancel of a cancelled batch: %v", err)
	}
}

// TestOpenAIFailedBatchAndBadKey: a batch that fails validation answers
// nothing; a wrong key is fatal and never shows in errors.
func TestOpenAIFailedBatchAndBadKey(t *testing.T) {
	env := newBatchEnv(t, batchapitest.BatchOptions{})
	lines, _ := testLines(t, 3, -1)
	ctx := context.Background()
	job := submitAll(t, env.batch, "failing", lines)
	if err := env.fake.FailBatch(job.ID, "invalid_model", "model not available for batch"); err != nil {
		t.Fatal(err)
	}
	job, err := env.batch.Get(ctx, job.ID)
	if err != nil || job.State != StateFailed || !strings.Contains(job.Message, "invalid_model") {
		t.Fatalf("%+v %v", job, err)
	}
	for _, r := range collect(t, env.batch, job) {
		if !errors.Is(r.Err, ErrNotAnswered) {
			t.Errorf("%s: %v", r.CustomID, r.Err)
		}
	}

	// A file the provider no longer has: a classified read failure.
	gone := job
	gone.InputFile = "file-nosuch"
	for _, err := range env.batch.Results(ctx, gone) {
		if llm.KindOf(err) != llm.Permanent {
			t.Errorf("missing input file: %v", err)
		}
	}

	wrong := "sk-wrong-key-9876543210"
	fb := batchapitest.NewBatch(batchapitest.BatchOptions{APIKey: testKey})
	srv := httptest.NewServer(fb)
	defer srv.Close()
	bc, err := NewOpenAI(OpenAIOptions{Online: onlineClient(t, srv.URL+"/v1", wrong)})
	if err != nil {
		t.Fatal(err)
	}
	f := []byte(`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}` + "\n")
	_, err = bc.Submit(ctx, "nokey", bytes.NewReader(f), 1)
	if llm.KindOf(err) != llm.Fatal || strings.Contains(err.Error(), wrong) {
		t.Errorf("wrong key: %v", err)
	}
}

// TestOpenAIFilePurpose: the upload carries the configured purpose (the
// fake, like OpenAI, takes only "batch": Together's "batch-api" is refused
// there, permanently).
func TestOpenAIFilePurpose(t *testing.T) {
	fb := batchapitest.NewBatch(batchapitest.BatchOptions{})
	srv := httptest.NewServer(fb)
	defer srv.Close()
	line := []byte(`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}` + "\n")
	for purpose, ok := range map[string]bool{"": true, "batch": true, "batch-api": false} {
		bc, err := NewOpenAI(OpenAIOptions{Online: onlineClient(t, srv.URL+"/v1", ""), FilePurpose: purpose})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bc.Submit(context.Background(), "p", bytes.NewReader(line), 1)
		if ok != (err == nil) || (!ok && llm.KindOf(err) != llm.Permanent) {
			t.Errorf("purpose %q: %v", purpose, err)
		}
	}
}
