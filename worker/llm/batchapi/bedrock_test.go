package batchapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi/batchapitest"
	"github.com/llamapipe/llamapipe/worker/llm/bedrock"
)

type bedrockEnv struct {
	fake   *batchapitest.BedrockServer
	store  storage.Store
	online *bedrock.Client
	batch  *Bedrock
}

// newBedrockEnv starts the fake control plane over a fresh bucket of the
// test MinIO and a client on it.
func newBedrockEnv(t *testing.T, fo batchapitest.BedrockOptions, limits Limits) *bedrockEnv {
	t.Helper()
	// Keep the test away from any real AWS configuration on the machine.
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	store := storagetest.NewS3Store(t, "work")
	fo.Store = store
	fake := batchapitest.NewBedrock(fo)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	creds := credentials.NewStaticCredentialsProvider("AKIAFAKE", "fake-secret", "")
	online, err := bedrock.New(ctx, bedrock.Options{Credentials: creds, Profile: llm.Profile{
		Provider: llm.ProviderBedrock, Model: "us.meta.llama4-scout-17b-instruct-v1:0", Region: "us-east-1",
		ContextTokens: 3500000, MaxOutputTokens: 8192, MaxImages: 20, TextOnly: true,
		ImageFormats: []string{"image/jpeg", "image/png"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := NewBedrock(ctx, BedrockOptions{Online: online, Store: store, Prefix: "runs/r1/batch",
		RoleARN: "arn:aws:iam::000000000000:role/llamapipe-batch", Endpoint: srv.URL, Credentials: creds, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return &bedrockEnv{fake: fake, store: store, online: online, batch: bc}
}

func (e *bedrockEnv) advance(t *testing.T, id string, want ...State) Job {
	t.Helper()
	var job Job
	for _, w := range want {
		if _, err := e.fake.Advance(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		var err error
		job, err = e.batch.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != w {
			t.Fatalf("state %s, want %s", job.State, w)
		}
	}
	return job
}

// TestBedrockHappyPath: records are the online Converse bodies, the job
// runs to Completed, answers validate against their schema and failed
// records come back as typed line errors.
func TestBedrockHappyPath(t *testing.T) {
	failing := map[string]bool{}
	env := newBedrockEnv(t, batchapitest.BedrockOptions{FailRecord: func(i int, id string) bool {
		if i%25 == 3 {
			failing[id] = true // called under the fake's lock, before results are read
			return true
		}
		return false
	}}, Limits{})
	lines, reqs := testLines(t, 110, -1)
	ctx := context.Background()
	job := submitAll(t, env.batch, "run1/part 1", lines)
	if job.State != StateValidating || job.Name != "run1-part-1" || job.InputFile != "runs/r1/batch/in/run1-part-1.jsonl" {
		t.Fatalf("submitted %+v", job)
	}
	// The input on S3: one record per line, modelInput the online body.
	rc, err := env.store.Get(ctx, job.InputFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	recs := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(recs) != 110 {
		t.Fatalf("%d records on S3", len(recs))
	}
	for i, raw := range []([]byte){recs[0], recs[1]} {
		var rec struct {
			RecordID   string          `json:"recordId"`
			ModelInput json.RawMessage `json:"modelInput"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		want, err := env.online.BatchBody(reqs[rec.RecordID])
		if err != nil || rec.RecordID != lines[i].CustomID || !bytes.Equal(rec.ModelInput, want) {
			t.Fatalf("record %d (%s): modelInput is not the online Converse body (%v)", i, rec.RecordID, err)
		}
		var body bedrock.ConverseBody
		if err := json.Unmarshal(rec.ModelInput, &body); err != nil || len(body.System) != 1 || len(body.Messages) != 1 {
			t.Fatalf("record %d: %v", i, err)
		}
		if i == 1 && (body.Messages[0].Content[1].Image == nil || body.Messages[0].Content[1].Image.Format != "jpeg" ||
			!bytes.Equal(body.Messages[0].Content[1].Image.Source.Bytes, reqs[rec.RecordID].Parts[1].Image.Data)) {
			t.Fatalf("caption record carries no jpeg image block")
		}
	}
	if _, err := env.batch.Get(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	job = env.advance(t, job.ID, StateValidating, StateInProgress, StateCompleted)
	if job.Counts.Completed != 110-len(failing) || job.Counts.Failed != len(failing) || len(failing) != 5 {
		t.Fatalf("counts %+v, %d failing", job.Counts, len(failing))
	}
	if job.InputFile != "runs/r1/batch/in/run1-part-1.jsonl" || !strings.HasSuffix(job.OutputFile, "/run1-part-1.jsonl.out") {
		t.Fatalf("files %q %q", job.InputFile, job.OutputFile)
	}
	if _, err := env.store.Stat(ctx, strings.TrimSuffix(job.OutputFile, "run1-part-1.jsonl.out")+"manifest.json.out"); err != nil {
		t.Errorf("manifest: %v", err)
	}
	res := collect(t, env.batch, job)
	if len(res) != 110 {
		t.Fatalf("%d results", len(res))
	}
	caption, _ := prompts.Load(prompts.Caption)
	summary, _ := prompts.Load(prompts.Summary)
	for _, l := range lines {
		r := res[l.CustomID]
		if failing[l.CustomID] {
			var le *LineError
			if !errors.As(r.Err, &le) || llm.KindOf(r.Err) != llm.Retryable || le.CustomID != l.CustomID {
				t.Errorf("%s: %v, want a retryable line error", l.CustomID, r.Err)
			}
			continue
		}
		resp, err := r.Response(reqs[l.CustomID])
		if err != nil {
			t.Fatalf("%s: %v", l.CustomID, err)
		}
		tmpl := summary
		if reqs[l.CustomID].HasImages() {
			tmpl = caption
		}
		if err := tmpl.Validate([]byte(resp.Text)); err != nil {
			t.Errorf("%s: answer does not validate: %v", l.CustomID, err)
		}
		if resp.FinishReason != "end_turn" || resp.Usage.InputTokens == 0 || resp.Usage.OutputTokens == 0 || resp.Usage.Estimated ||
			resp.Model != env.online.Profile().Model {
			t.Errorf("%s: %+v", l.CustomID, resp)
		}
		if reqs[l.CustomID].HasImages() && resp.Usage.ImageTokens == 0 {
			t.Errorf("%s: no image tokens estimated", l.CustomID)
		}
	}
}

// TestBedrockExpiredHalfDone: records answered before expiry come back,
// the others as ErrNotAnswered.
func TestBedrockExpiredHalfDone(t *testing.T) {
	env := newBedrockEnv(t, batchapitest.BedrockOptions{}, Limits{})
	lines, _ := testLines(t, 100, -1)
	ctx := context.Background()
	job := submitAll(t, env.batch, "expiring", lines)
	env.advance(t, job.ID, StateValidating, StateInProgress)
	if err := env.fake.Expire(ctx, job.ID, 50); err != nil {
		t.Fatal(err)
	}
	job, err := env.batch.Get(ctx, job.ID)
	if err != nil || job.State != StateExpired {
		t.Fatalf("%+v %v", job, err)
	}
	res := collect(t, env.batch, job)
	if len(res) != 100 {
		t.Fatalf("%d results", len(res))
	}
	for i, l := range lines {
		r := res[l.CustomID]
		if i < 50 && (r.Err != nil || !strings.HasPrefix(r.Resp.Text, "{")) {
			t.Errorf("answered %s: %v", l.CustomID, r.Err)
		}
		if i >= 50 && !errors.Is(r.Err, ErrNotAnswered) {
			t.Errorf("unanswered %s: %v", l.CustomID, r.Err)
		}
	}
}

// TestBedrockMinimumRecords: Submit refuses fewer records than the minimum
// without creating a job; a job the provider finds too small fails and
// answers nothing.
func TestBedrockMinimumRecords(t *testing.T) {
	env := newBedrockEnv(t, batchapitest.BedrockOptions{}, Limits{})
	lines, _ := testLines(t, 5, -1)
	p := NewPacker(env.batch.Encode, env.batch.Limits())
	for _, l := range lines {
		if _, err := p.Add(l); err != nil {
			t.Fatal(err)
		}
	}
	f := p.Flush()
	_, err := env.batch.Submit(context.Background(), "small", bytes.NewReader(f.Data), f.Lines())
	var few *TooFewLinesError
	if !errors.As(err, &few) || few.Lines != 5 || few.Min != 100 || !errors.Is(err, ErrPermanent) {
		t.Fatalf("5 lines: %v", err)
	}
	if env.fake.Created() != 0 {
		t.Fatalf("a job was created for 5 lines")
	}
	// With the client's minimum lowered, the provider's own check fails
	// the job.
	lim := BedrockLimits()
	lim.MinLines = 1
	env2 := newBedrockEnv(t, batchapitest.BedrockOptions{}, lim)
	job := submitAll(t, env2.batch, "small", lines)
	job, err = env2.batch.Get(context.Background(), job.ID)
	if err != nil || job.State != StateFailed || !strings.Contains(job.Message, "minimum") {
		t.Fatalf("%+v %v", job, err)
	}
	for _, r := range collect(t, env2.batch, job) {
		if !errors.Is(r.Err, ErrNotAnswered) {
			t.Errorf("%s: %v", r.CustomID, r.Err)
		}
	}
}

// TestBedrockCancel: a stopped job goes Stopping → Stopped (cancelling →
// cancelled) and answers nothing; stopping it again is a classified error.
func TestBedrockCancel(t *testing.T) {
	env := newBedrockEnv(t, batchapitest.BedrockOptions{}, Limits{})
	lines, _ := testLines(t, 100, -1)
	ctx := context.Background()
	job := submitAll(t, env.batch, "to-stop", lines)
	env.advance(t, job.ID, StateValidating)
	if err := env.batch.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if j, err := env.batch.Get(ctx, job.ID); err != nil || j.State != StateCancelling {
		t.Fatalf("%+v %v", j, err)
	}
	job = env.advance(t, job.ID, StateCancelled)
	n := 0
	for _, r := range collect(t, env.batch, job) {
		n++
		if !errors.Is(r.Err, ErrNotAnswered) {
			t.Errorf("%s: %v", r.CustomID, r.Err)
		}
	}
	if n != 100 {
		t.Fatalf("%d results", n)
	}
	if err := env.batch.Cancel(ctx, job.ID); llm.KindOf(err) != llm.Permanent {
		t.Errorf("stopping a stopped job: %v", err)
	}
	if _, err := env.batch.Get(ctx, "arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/nosuch"); llm.KindOf(err) != llm.Fatal {
		t.Errorf("unknown job: %v", err)
	}
}
