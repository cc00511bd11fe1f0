package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/cancel"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi/batchapitest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

const batchKey = "sk-batch-test"

// batchModeEnv is a worker whose model is reached online through the fake
// chat server and in batch mode through the fake Batch API.
type batchModeEnv struct {
	*env
	chat   *fakeserver.Server
	fake   *batchapitest.BatchServer
	prices llm.Prices
	// contextTokens is the model's context window (small: long documents).
	contextTokens int
	// fakeOpts configure the fake Batch API (its APIKey is batchKey).
	fakeOpts batchapitest.BatchOptions
}

// oneJob gives the collector a window long enough that every item of a
// test's batch has left its request before the first job is cut, also
// under -race on two busy cores: for the tests that expect (and expire)
// exactly one job for the whole batch. At 300 ms the items were sometimes
// split into two jobs.
func oneJob(c *worker.Config, _ *batchapi.OpenAIOptions, _ *batchModeEnv) {
	if c != nil {
		c.BatchCollectDelay = 1500 * time.Millisecond
	}
}

func newBatchModeEnv(t *testing.T, opts ...func(*worker.Config, *batchapi.OpenAIOptions, *batchModeEnv)) *batchModeEnv {
	t.Helper()
	e := &batchModeEnv{env: newEnv(t), prices: llm.Prices{Currency: "USD", InputPerMillion: 0.2, OutputPerMillion: 0.6, BatchDiscount: 0.5},
		contextTokens: 131072}
	for _, f := range opts {
		f(nil, nil, e)
	}
	e.chat = fakeserver.New(fakeserver.Options{APIKey: batchKey})
	csrv := httptest.NewServer(e.chat)
	e.fakeOpts.APIKey = batchKey
	e.fake = batchapitest.NewBatch(e.fakeOpts)
	bsrv := httptest.NewServer(e.fake)
	t.Cleanup(func() { e.chat.Close(); csrv.Close(); bsrv.Close() })
	client := func(base string) *openai.Client {
		prof := llm.Profile{Preset: "test", Provider: llm.ProviderOpenAI, BaseURL: base, Model: fakeserver.DefaultModel,
			ContextTokens: e.contextTokens, MaxOutputTokens: 1024, MaxImages: 5, JSONSchema: true, TextOnly: true, Prices: e.prices,
			ImageFormats: []string{"image/jpeg", "image/png"}, BatchAPI: llm.BatchOpenAI}
		c, err := openai.New(openai.Options{Profile: prof, APIKey: batchKey, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	o := batchapi.OpenAIOptions{Online: client(bsrv.URL + "/v1")}
	cfg := worker.Config{Model: client(csrv.URL + "/v1"), Concurrency: 4,
		BatchCollectDelay: 300 * time.Millisecond, BatchPollInterval: 150 * time.Millisecond}
	for _, f := range opts {
		f(&cfg, &o, nil)
	}
	bc, err := batchapi.NewOpenAI(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Batch = bc
	logs := &lockedBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.runWorker(cfg, func() { t.Logf("worker log:\n%s\nqueues:\n%s", logs.String(), queueState(t, e.url)) })
	return e
}

// complete advances a provider job until it is completed.
func (e *batchModeEnv) complete(id string) {
	e.t.Helper()
	for {
		st, err := e.fake.Advance(id)
		if err != nil {
			e.t.Fatal(err)
		}
		if st == "completed" {
			return
		}
	}
}

// finish waits for the batch to be finalized and returns its output store
// and manifest.
func (e *batchModeEnv) finish(batch, outDir string) (storage.Store, []jobs.Entry) {
	e.t.Helper()
	out, err := localstore.Open(outDir)
	if err != nil {
		e.t.Fatal(err)
	}
	return out, e.wait(batch, out, 30*time.Second)
}

// submitted waits for the fake to have n batches and returns the newest.
func (e *batchModeEnv) submitted(n int) string {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(e.fake.Batches()) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("no provider batch job submitted (have %d, want %d)", len(e.fake.Batches()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids := e.fake.Batches()
	return ids[len(ids)-1]
}

func contractFolder(t *testing.T, n int) string {
	t.Helper()
	src := t.TempDir()
	for i := range n {
		body := fmt.Sprintf("Service agreement %d between Acme Ltd and Beta GmbH. The term is %d months. Payment is due within 30 days. "+
			"Either party may terminate with 60 days notice. Liability is capped at the fees of the last 12 months.", i, 12+i)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%d.txt", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// Items of a batch in batch mode are prepared, wait for the provider's batch
// job (no online call), and end once each with the batch price.
func TestBatchModeAnswersThroughTheBatchAPI(t *testing.T) {
	reg := metrics.NewRegistry()
	e := newBatchModeEnv(t, oneJob, func(c *worker.Config, _ *batchapi.OpenAIOptions, _ *batchModeEnv) {
		if c != nil {
			c.Metrics = metrics.New(reg)
		}
	})
	src, outDir := contractFolder(t, 4), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	id := e.submitted(1)
	time.Sleep(2 * time.Second) // a second collector (one window later) must not submit the same requests again
	if n := len(e.fake.Batches()); n != 1 {
		t.Fatalf("%d provider jobs, want 1 for the 4 requests", n)
	}
	c, _ := e.tracker.Counts(context.Background(), res.BatchID)
	if c.Ended() != 0 {
		t.Fatalf("items ended before the batch job answered: %+v", c)
	}
	e.complete(id)
	out, es := e.finish(res.BatchID, outDir)
	if len(es) != 4 {
		t.Fatalf("%d manifest entries, want 4", len(es))
	}
	for _, en := range es {
		if en.Status != jobs.StatusDone {
			t.Fatalf("%s: %s %s", en.Source, en.Status, en.Error)
		}
		online := e.prices.Cost(llm.Usage{InputTokens: en.InputTokens, OutputTokens: en.OutputTokens})
		if en.InputTokens == 0 || math.Abs(en.Cost-online*0.5) > 1e-12 {
			t.Errorf("%s: cost %g for %d+%d tokens, want the batch price %g", en.Key, en.Cost, en.InputTokens, en.OutputTokens, online*0.5)
		}
		readJSON(t, out, en.Results[0])
	}
	if s := e.chat.Stats(); s.Requests != 0 {
		t.Errorf("%d online calls, want none", s.Requests)
	}
	// Answered requests keep their answer (for replays) but not their line.
	lines, answers := 0, 0
	for info, err := range out.List(context.Background(), ".llamapipe/batch/", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(info.Key, ".line"):
			lines++
		case strings.HasSuffix(info.Key, ".answer.json"):
			answers++
		}
	}
	if lines != 0 || answers != 4 {
		t.Errorf("%d request lines and %d answers left, want 0 and 4", lines, answers)
	}
	// Metrics count the batch answers at the batch price.
	var sum, metered float64
	for _, en := range es {
		sum += en.Cost
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == metrics.ModelCostTotal {
			for _, m := range mf.GetMetric() {
				metered += m.GetCounter().GetValue()
			}
		}
	}
	if math.Abs(metered-sum) > 1e-9 || sum == 0 {
		t.Errorf("metrics cost %g, manifest cost %g: want them equal", metered, sum)
	}
}

// A provider job that expires half done: the answered lines are used, the
// others are asked online once, and every item still ends once.
func TestBatchModeExpiredJobFinishesOnline(t *testing.T) {
	e := newBatchModeEnv(t, oneJob)
	src, outDir := contractFolder(t, 4), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	id := e.submitted(1)
	if _, err := e.fake.Advance(id); err != nil { // validating → in_progress
		t.Fatal(err)
	}
	if err := e.fake.Expire(id, 2); err != nil {
		t.Fatal(err)
	}
	_, es := e.finish(res.BatchID, outDir)
	if len(es) != 4 {
		t.Fatalf("%d manifest entries, want 4", len(es))
	}
	batchPriced := 0
	for _, en := range es {
		if en.Status != jobs.StatusDone {
			t.Fatalf("%s: %s %s", en.Source, en.Status, en.Error)
		}
		online := e.prices.Cost(llm.Usage{InputTokens: en.InputTokens, OutputTokens: en.OutputTokens})
		if math.Abs(en.Cost-online*0.5) < 1e-12 {
			batchPriced++
		}
	}
	if batchPriced != 2 {
		t.Errorf("%d items at the batch price, want the 2 the job answered", batchPriced)
	}
	if s := e.chat.Stats(); s.Requests != 2 {
		t.Errorf("%d online calls, want 2 (the lines the job never answered)", s.Requests)
	}
	// The batch's model latency counts the online calls only, not the
	// job's answers.
	if n := e.modelCalls(res.BatchID).ModelCalls; int64(n) != e.chat.Stats().Requests {
		t.Errorf("the series counted %d model calls, want the %d online ones", n, e.chat.Stats().Requests)
	}
	if n := len(e.fake.Batches()); n != 1 {
		t.Errorf("%d provider jobs, want 1", n)
	}
}

// Without the batch mode option, the same worker answers online.
func TestOnlineModeIgnoresTheBatchAPI(t *testing.T) {
	e := newBatchModeEnv(t)
	src, outDir := contractFolder(t, 2), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Queue: jobs.QueueDefault, Options: jobs.Options{ModelMode: jobs.ModelAuto}}})
	_, es := e.finish(res.BatchID, outDir)
	for _, en := range es {
		t.Logf("%s %s %s", en.Key, en.Status, en.Error)
	}
	if len(es) != 2 || e.chat.Stats().Requests != 2 || len(e.fake.Batches()) != 0 {
		t.Fatalf("auto mode on the default queue: %d entries, %d online calls, %d batch jobs; want 2, 2, 0",
			len(es), e.chat.Stats().Requests, len(e.fake.Batches()))
	}
}

// Cancelling a batch removes its waiting items and cancels the provider job
// that holds only its requests.
func TestCancelledBatchCancelsItsProviderJob(t *testing.T) {
	e := newBatchModeEnv(t)
	src, outDir := contractFolder(t, 2), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	id := e.submitted(1)
	if _, err := e.fake.Advance(id); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		waiting, _ := insp.ListRetryTasks(jobs.QueueDefault)
		if len(waiting) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d items waiting for the batch job, want 2", len(waiting))
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, e.url))
	defer client.Close()
	if _, err := cancel.Batch(context.Background(), e.tracker, insp, client, res.BatchID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for e.fake.Status(id) != "cancelling" {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("provider job is %s, want cancelling", e.fake.Status(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, es := e.finish(res.BatchID, outDir)
	for _, en := range es {
		if en.Status != jobs.StatusCancelled {
			t.Errorf("%s: %s, want cancelled", en.Key, en.Status)
		}
	}
	if e.chat.Stats().Requests != 0 {
		t.Errorf("%d online calls for a cancelled batch", e.chat.Stats().Requests)
	}
}

// Fewer requests than the batch API takes in one job are answered online.
func TestTooFewRequestsForABatchJobGoOnline(t *testing.T) {
	e := newBatchModeEnv(t, func(_ *worker.Config, o *batchapi.OpenAIOptions, _ *batchModeEnv) {
		if o != nil {
			o.Limits = batchapi.Limits{MinLines: 10, MaxLines: 1000}
		}
	})
	src, outDir := contractFolder(t, 3), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Queue: jobs.QueueNightly, Options: jobs.Options{ModelMode: jobs.ModelAuto}}})
	_, es := e.finish(res.BatchID, outDir)
	if len(es) != 3 || e.chat.Stats().Requests != 3 || len(e.fake.Batches()) != 0 {
		t.Fatalf("%d entries, %d online calls, %d batch jobs; want 3, 3, 0", len(es), e.chat.Stats().Requests, len(e.fake.Batches()))
	}
	for _, en := range es {
		if en.Status != jobs.StatusDone {
			t.Errorf("%s: %s %s", en.Key, en.Status, en.Error)
		}
	}
}

// With --batch-small wait, fewer requests than a job's minimum wait for
// more instead of going online.
func TestTooFewRequestsWaitWhenAskedTo(t *testing.T) {
	e := newBatchModeEnv(t, func(c *worker.Config, o *batchapi.OpenAIOptions, _ *batchModeEnv) {
		if c != nil {
			o.Limits = batchapi.Limits{MinLines: 10, MaxLines: 1000}
			c.BatchSmall = "wait"
		}
	})
	src, outDir := contractFolder(t, 2), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	time.Sleep(1500 * time.Millisecond) // several collect windows
	c, err := e.tracker.Counts(context.Background(), res.BatchID)
	if err != nil || c.Ended() != 0 || e.chat.Stats().Requests != 0 || len(e.fake.Batches()) != 0 {
		t.Fatalf("counts %+v (%v), %d online calls, %d jobs: want the 2 requests still waiting", c, err, e.chat.Stats().Requests, len(e.fake.Batches()))
	}
}

// With batch retries, what an expired job left unanswered goes into the
// next provider job instead of online.
func TestUnansweredLinesRetryInTheNextJob(t *testing.T) {
	e := newBatchModeEnv(t, oneJob, func(c *worker.Config, _ *batchapi.OpenAIOptions, _ *batchModeEnv) {
		if c != nil {
			c.BatchRetry = "batch"
		}
	})
	src, outDir := contractFolder(t, 4), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	first := e.submitted(1)
	if _, err := e.fake.Advance(first); err != nil {
		t.Fatal(err)
	}
	if err := e.fake.Expire(first, 1); err != nil {
		t.Fatal(err)
	}
	second := e.submitted(2)
	e.complete(second)
	_, es := e.finish(res.BatchID, outDir)
	for _, en := range es {
		online := e.prices.Cost(llm.Usage{InputTokens: en.InputTokens, OutputTokens: en.OutputTokens})
		if en.Status != jobs.StatusDone || math.Abs(en.Cost-online*0.5) > 1e-12 {
			t.Errorf("%s: %s, cost %g; want done at the batch price", en.Key, en.Status, en.Cost)
		}
	}
	if len(es) != 4 || e.chat.Stats().Requests != 0 || len(e.fake.Batches()) != 2 {
		t.Errorf("%d entries, %d online calls, %d jobs; want 4, 0, 2", len(es), e.chat.Stats().Requests, len(e.fake.Batches()))
	}
}

// A long document in batch mode: its map requests go in provider jobs,
// each reduce level in a later one, and the item continues exactly as online
// (map → tree reduce → digest); an image in the same batch is captioned
// through the first job. No online call is made.
func TestBatchModeLongDocumentAndImage(t *testing.T) {
	e := newBatchModeEnv(t, func(_ *worker.Config, _ *batchapi.OpenAIOptions, env *batchModeEnv) {
		if env != nil {
			env.contextTokens = 4096
		}
	})
	src, outDir := t.TempDir(), t.TempDir()
	var sb strings.Builder
	for i := range 150 {
		fmt.Fprintf(&sb, "Clause %d. The licensee pays a royalty of %d percent on net sales each quarter.\n\n", i+1, i%9+1)
	}
	if err := os.WriteFile(filepath.Join(src, "licence.md"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "photo.png"), corpus(t, "images/formats/seeding_really_jpeg.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	// Complete every provider job as it appears until the batch ends.
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := e.tracker.Counts(context.Background(), res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Finalized {
			break
		}
		for _, id := range e.fake.Batches() {
			if st := e.fake.Status(id); st != "completed" {
				e.complete(id)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not finalized: %+v, jobs %v", c, e.fake.Batches())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, es := e.finish(res.BatchID, outDir)
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	for _, en := range es {
		if en.Status != jobs.StatusDone {
			t.Fatalf("%s: %s %s", en.Key, en.Status, en.Error)
		}
		if en.Kind == jobs.KindDocument && en.Chunks < 3 {
			t.Errorf("the document was mapped in %d chunks, want several", en.Chunks)
		}
		readJSON(t, out, en.Results[0])
	}
	// The reduce can only be asked once the maps are answered: at least
	// two jobs, however the collector windows fell.
	if n := len(e.fake.Batches()); n < 2 {
		t.Errorf("%d provider jobs, want at least 2 (the maps, then the reduce)", n)
	}
	if e.chat.Stats().Requests != 0 {
		t.Errorf("%d online calls, want none", e.chat.Stats().Requests)
	}
}

// A provider whose file upload fails (an HTML 502 the SDK cannot read):
// while it lasts, the batch shows the failure with the provider's message
// (status, the dashboard and run's progress read Counts.Warning) and the
// metrics count it; after the bound (3 failures here) the requests are
// answered online, and every item ends once.
func TestBatchModeFailingUploadGoesOnlineAndShows(t *testing.T) {
	reg := metrics.NewRegistry()
	e := newBatchModeEnv(t, func(c *worker.Config, _ *batchapi.OpenAIOptions, env *batchModeEnv) {
		if env != nil {
			env.fakeOpts.FailUpload = func(int) bool { return true }
		}
		if c != nil {
			c.BatchOnlineAfterFailures, c.BatchOnlineAfter = 3, time.Hour
			c.Metrics = metrics.New(reg)
		}
	})
	src, outDir := contractFolder(t, 4), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	var warned string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := e.tracker.Counts(context.Background(), res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Warning != "" {
			warned = c.Warning
		}
		if c.Finalized {
			if c.Warning != "" {
				t.Errorf("warning left after the requests went online: %q", c.Warning)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not finalized: %+v", c)
		}
	}
	if !strings.Contains(warned, "provider batch API failing") || !strings.Contains(warned, "Bad Gateway") {
		t.Errorf("warning while the upload failed: %q, want the provider's message", warned)
	}
	_, es := e.finish(res.BatchID, outDir)
	seen := map[string]int{}
	for _, en := range es {
		seen[en.Item]++
		if en.Status != jobs.StatusDone {
			t.Errorf("%s: %s %s", en.Key, en.Status, en.Error)
		}
	}
	if len(es) != 4 || len(seen) != 4 {
		t.Fatalf("%d entries for %d items, want each of 4 once", len(es), len(seen))
	}
	if n := len(e.fake.Batches()); n != 0 {
		t.Errorf("%d provider jobs, want none (every upload failed)", n)
	}
	if n := e.chat.Stats().Requests; n < 4 {
		t.Errorf("%d online calls, want at least 4", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var failures float64
	for _, mf := range mfs {
		if mf.GetName() == metrics.BatchModeFailures {
			for _, m := range mf.GetMetric() {
				failures += m.GetCounter().GetValue()
			}
		}
	}
	if failures != 3 {
		t.Errorf("%v batch-mode failures counted, want 3", failures)
	}
}
