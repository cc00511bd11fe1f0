package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi/batchapitest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// TestPipelineOnRedisCluster runs the pipeline's commands against the
// three-primary Redis Cluster `make test` starts, through
// redis-cluster://: a worker (tenants file with shares, a shared
// requests-per-minute limit, a small-context model so a long PDF is mapped
// and reduced), the HTTP API, the scheduler (its lease), the dashboard,
// and the CLI's ingest, status, cancel and retry; then a batch in batch
// mode (the provider's batch API, faked) with a library worker. Every script that
// touches several keys must keep them in one hash slot, or Redis answers
// CROSSSLOT and the batch never ends.
//
// It is the only test that runs workers on the cluster: the queues
// (asynq:{default}, …) are shared by every package's tests.
func TestPipelineOnRedisCluster(t *testing.T) {
	url := jobstest.ClusterURL(t)
	ctx := context.Background()
	_, rdb, err := redisconn.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	tr := jobs.NewTracker(rdb, "")

	root := t.TempDir()
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	alphaSrc, betaSrc := filepath.Join(root, "data", "alpha"), filepath.Join(root, "data", "beta")
	alphaOut, betaOut := filepath.Join(root, "results", "alpha"), filepath.Join(root, "results", "beta")
	img := jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "images", "photos"), "Grey_by_Sigi_Sagi.jpg"))
	write(filepath.Join(alphaSrc, "long.pdf"), jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "pdfs", "contracts"), "cuad_FederatedGovIncome_Services_Agreement.pdf")))
	write(filepath.Join(alphaSrc, "img", "grey.jpg"), img)
	write(filepath.Join(alphaSrc, "img", "copy", "grey.jpg"), img) // the same image: captioned once
	write(filepath.Join(alphaSrc, "lease.txt"), []byte("A lease between Alpha GmbH and Beta S.A. for 12 months at EUR 900 per month."))
	for i := range 3 {
		write(filepath.Join(betaSrc, fmt.Sprintf("c%d.txt", i)), fmt.Appendf(nil, "Contract %d between Gamma and Delta. Term: %d months.", i, i+3))
	}
	tenantsFile := filepath.Join(root, "tenants.yaml")
	write(tenantsFile, fmt.Appendf(nil, `tenants:
  alpha: {share: 3, sources: [%q], outputs: [%q]}
  beta: {share: 1, sources: [%q], outputs: [%q]}
`, alphaSrc, alphaOut, betaSrc, betaOut))
	// The offline model with a context small enough that a contract is
	// split into chunks, mapped and reduced.
	profiles := filepath.Join(root, "profiles.yaml")
	write(profiles, []byte("profiles:\n  tiny:\n    preset: llama-api\n    provider: offline\n    model: offline\n    base_url: \"\"\n    no_api_key: true\n    text_only: true\n    context_tokens: 8192\n    max_output_tokens: 1024\n"))
	schedSrc, schedOut := filepath.Join(root, "sched"), filepath.Join(root, "sched-out")
	write(filepath.Join(schedSrc, "a.txt"), []byte("A scheduled lease between A and B."))
	// A watched inbox (its watcher holds a lease on the cluster).
	inboxSrc, inboxOut := filepath.Join(root, "inbox"), filepath.Join(root, "inbox-out")
	write(filepath.Join(inboxSrc, "x.txt"), []byte("An inbox lease between X and Y."))
	write(filepath.Join(inboxSrc, "y.txt"), []byte("An inbox lease between Y and Z."))
	schedules := filepath.Join(root, "schedules.yaml")
	write(schedules, []byte("schedules:\n  - name: cluster-every-second\n    cron: '@every 2s'\n    sources: ["+schedSrc+"]\n    out: "+schedOut+"\n    queue: default\n"+
		"  - name: cluster-inbox\n    watch: {interval: 200ms, settle: 0s}\n    sources: ["+inboxSrc+"]\n    out: "+inboxOut+"\n    max_queued: 1\n"))
	// A bounded batch: two items queued at once, the rest in its feed's
	// pages, topped up by the workers' feed tasks.
	boundSrc, boundOut := filepath.Join(root, "bounded"), filepath.Join(root, "bounded-out")
	const nBound = 8
	for i := range nBound {
		write(filepath.Join(boundSrc, fmt.Sprintf("b%d.txt", i)), fmt.Appendf(nil, "Bounded contract %d between E and F.", i))
	}

	t.Setenv(envAPITokens, "tok-alpha-cl1 alpha\ntok-beta-cl2 beta\n")
	t.Setenv(envDashboardPassword, "")
	t.Setenv(envDashboardToken, "")
	model := []string{"--preset", "tiny", "--profiles", profiles}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	type proc struct {
		name     string
		out, err lockedBuf
		done     chan int
	}
	var procs []*proc
	start := func(name string, args ...string) *proc {
		p := &proc{name: name, done: make(chan int, 1)}
		procs = append(procs, p)
		go func() {
			p.done <- run(pctx, append([]string{"llamapipe", "--redis-url", url}, args...), &p.out, &p.err)
		}()
		return p
	}
	// Two worker processes serve critical and default (not nightly: the
	// cancel below needs items that stay queued).
	for range 2 {
		start("worker", append([]string{"worker", "--concurrency", "3", "--queues", "critical=6,default=3",
			"--tenants", tenantsFile, "--rpm", "600"}, model...)...)
	}
	serve := start("serve", append([]string{"serve", "--listen", "127.0.0.1:0", "--allow", filepath.Join(root, "data"),
		"--allow-out", filepath.Join(root, "results"), "--tenants", tenantsFile}, model...)...)
	start("scheduler", "scheduler", "--config", schedules)
	dash := start("dashboard", "dashboard", "--listen", "127.0.0.1:0")
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		for _, p := range procs {
			if code := <-p.done; code != 0 && code != exitCanceled {
				t.Errorf("%s exited %d: %s", p.name, code, p.err.String())
			}
			if t.Failed() {
				t.Logf("%s's log:\n%s", p.name, tail(p.err.String(), 3000))
			}
		}
	}
	defer stopAll()
	addr := func(p *proc, re string) string {
		t.Helper()
		r := regexp.MustCompile(re)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if m := r.FindStringSubmatch(p.out.String() + p.err.String()); m != nil {
				return m[1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start: %s", p.name, p.err.String())
			}
		}
	}
	waitFinalized := func(id string) jobs.Counts {
		t.Helper()
		var c jobs.Counts
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			c, err = tr.Counts(ctx, id)
			if err == nil && c.Finalized {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %s not finalized: %+v, %v", id, c, err)
			}
		}
	}

	// The shared requests-per-minute bucket (go-redis/redis_rate, GCRA: a
	// key that lives until the bucket is full again, 100 ms a request at
	// 600 a minute) appears on the cluster while the batches run.
	var buckets atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil && buckets.Load() == 0 {
			_ = rdb.(*redis.ClusterClient).ForEachMaster(watchCtx, func(ctx context.Context, m *redis.Client) error {
				keys, err := m.Keys(ctx, "rate:*:rpm").Result()
				buckets.Add(int64(len(keys)))
				return err
			})
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// 1. The CLI's ingest, for tenant alpha: a long PDF mapped and reduced,
	// an image captioned once for its two copies, a text.
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", alphaSrc, "--out", alphaOut, "--tenant", "alpha")
	if code != 0 {
		t.Fatalf("ingest: exit %d: %s", code, stderr)
	}
	alphaID := strings.TrimSpace(stdout)
	code, stdout, stderr = runCLI(t, "--redis-url", url, "ingest", boundSrc, "--out", boundOut, "--max-queued", "2")
	if code != 0 {
		t.Fatalf("bounded ingest: exit %d: %s", code, stderr)
	}
	boundID := strings.TrimSpace(stdout)
	if n, err := rdb.Exists(ctx, jobs.BatchFeedKey("", boundID)).Result(); err != nil || n != 1 {
		t.Errorf("the bounded batch has no feed on the cluster: %d, %v", n, err)
	}
	cc := rdb.(*redis.ClusterClient)
	if a, b := cc.ClusterKeySlot(ctx, jobs.BatchFeedKey("", boundID)).Val(), cc.ClusterKeySlot(ctx, jobs.BatchKey("", boundID)).Val(); a != b {
		t.Errorf("the feed's slot %d is not its batch's %d", a, b)
	}

	// 2. The API, for tenant beta.
	base := addr(serve, `api on (http://127\.0\.0\.1:\d+)/v1/`)
	idem := ""
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	body := fmt.Sprintf(`{"sources":[%q],"out":%q}`, betaSrc, betaOut)
	idem = "cluster-submit-1" // its record is kept on the cluster
	code, msg := call("POST", "/v1/batches", "tok-beta-cl2", body)
	if code != http.StatusCreated {
		t.Fatalf("beta's submit: %d %s", code, msg)
	}
	var beta, again SubmitID
	if err := json.Unmarshal([]byte(msg), &beta); err != nil || beta.ID == "" {
		t.Fatalf("submit answer %s: %v", msg, err)
	}
	code, msg = call("POST", "/v1/batches", "tok-beta-cl2", body)
	if err := json.Unmarshal([]byte(msg), &again); code != http.StatusOK || err != nil || again.ID != beta.ID {
		t.Errorf("the same submit with the same Idempotency-Key: %d %s, want 200 and batch %s", code, msg, beta.ID)
	}
	idem = ""

	c := waitFinalized(alphaID)
	if c.Done != 4 || c.Total != 4 {
		t.Errorf("alpha's batch: %+v, want 4 done", c)
	}
	es := manifest(t, filepath.Join(alphaOut, "manifest.jsonl"))
	dups := 0
	for _, e := range es {
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
		if strings.HasSuffix(e.Source, "long.pdf") {
			t.Logf("the contract: %d pages in %d chunks", e.Pages, e.Chunks)
		}
		if strings.HasSuffix(e.Source, "long.pdf") && e.Chunks < 2 {
			t.Errorf("the long PDF was not mapped in chunks: %+v", e)
		}
		if strings.HasSuffix(e.Source, ".jpg") {
			for _, r := range e.Results {
				if b, err := os.ReadFile(filepath.Join(alphaOut, r)); err == nil && strings.Contains(string(b), "duplicate_of") {
					dups++
				}
			}
		}
	}
	if len(es) != 4 || dups != 1 {
		t.Errorf("%d manifest entries (want 4), %d captions reused (want 1): %+v", len(es), dups, es)
	}
	c = waitFinalized(boundID)
	if c.Done != nBound || c.Total != nBound {
		t.Errorf("the bounded batch: %+v, want %d done", c, nBound)
	}
	if es := manifest(t, filepath.Join(boundOut, "manifest.jsonl")); len(es) != nBound {
		t.Errorf("the bounded batch's manifest: %d entries, want %d", len(es), nBound)
	}
	c = waitFinalized(beta.ID)
	stopWatch()
	<-watched
	if buckets.Load() == 0 {
		t.Error("no rate-limit bucket appeared on the cluster while the batches ran")
	}
	if c.Done != 3 {
		t.Errorf("beta's batch: %+v, want 3 done", c)
	}
	if code, msg := call("GET", "/v1/batches/"+beta.ID, "tok-beta-cl2", ""); code != http.StatusOK || !strings.Contains(msg, `"done":3`) {
		t.Errorf("beta's batch through the API: %d %s", code, msg)
	}
	if code, _ := call("GET", "/v1/batches/"+alphaID, "tok-beta-cl2", ""); code != http.StatusNotFound {
		t.Errorf("beta reading alpha's batch: %d, want 404", code)
	}

	// 3. status, cancel and retry: a batch on the nightly queue, which no
	// worker here serves.
	code, stdout, stderr = runCLI(t, "--redis-url", url, "ingest", betaSrc, "--out", filepath.Join(betaOut, "nightly"), "--queue", "nightly")
	if code != 0 {
		t.Fatalf("ingest nightly: exit %d: %s", code, stderr)
	}
	nightly := strings.TrimSpace(stdout)
	if code, stdout, _ := runCLI(t, "--redis-url", url, "status", alphaID); code != 0 || !strings.Contains(stdout, alphaID) {
		t.Errorf("status: exit %d: %s", code, stdout)
	}
	code, stdout, stderr = runCLI(t, "--redis-url", url, "cancel", nightly)
	if code != 0 || !strings.Contains(stderr, "3 queued items removed") {
		t.Fatalf("cancel: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if c, err := tr.Counts(ctx, nightly); err != nil || c.Cancelled != 3 || !c.Complete() {
		t.Errorf("counts after cancel: %+v %v", c, err)
	}
	code, stdout, stderr = runCLI(t, "--redis-url", url, "retry", nightly, "--cancelled")
	if code != 0 || !strings.Contains(stderr, "retries 3 items") {
		t.Fatalf("retry --cancelled: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// 4. The scheduler (one leader, its lease on the cluster) enqueued a
	// batch that the workers finished.
	var scheduled string
	for deadline := time.Now().Add(30 * time.Second); scheduled == ""; time.Sleep(100 * time.Millisecond) {
		ids, _ := tr.List(ctx, 0)
		for _, id := range ids {
			if b, err := tr.Get(ctx, id); err == nil && b.Out == schedOut {
				if c, err := tr.Counts(ctx, id); err == nil && c.Finalized && c.Ended() == 1 {
					scheduled = id
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled batch finished in 30s")
		}
	}

	// The watched inbox's rolling batch took both objects, one queued at
	// a time, and the workers ended them; its lease is on the cluster.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		inbox := 0
		ids, _ := tr.List(ctx, 0)
		for _, id := range ids {
			if b, err := tr.Get(ctx, id); err == nil && b.Watch == "cluster-inbox" {
				if c, err := tr.Counts(ctx, id); err == nil && c.Done == 2 {
					inbox++
				}
			}
		}
		if inbox == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watched inbox's batch did not end its two items in 30s")
		}
	}
	if n, err := rdb.Exists(ctx, jobs.WatchLeaseKey("", "cluster-inbox")).Result(); err != nil || n != 1 {
		t.Errorf("no watch lease on the cluster: %d, %v", n, err)
	}

	// 5. The dashboard's pages, read from the cluster: the list, each
	// batch's page, and asynqmon's queues.
	dbase := addr(dash, `dashboard on (http://127\.0\.0\.1:\d+)/`)
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(dbase + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, page := get("/"); code != http.StatusOK || !strings.Contains(page, "sched-") {
		t.Errorf("the dashboard's list: %d, no scheduled batch in it", code)
	}
	for _, id := range []string{alphaID, beta.ID, nightly, scheduled} {
		if code, page := get("/batches/" + id); code != http.StatusOK || !strings.Contains(page, id) {
			t.Errorf("the dashboard's page of batch %s: %d", id, code)
		}
	}
	if code, page := get("/asynq/api/queues"); code != http.StatusOK || !strings.Contains(page, `"nightly"`) {
		t.Errorf("asynqmon's queues: %d %s", code, tail(page, 300))
	}

	// 6. Batch mode, once the CLI's workers (whose model has no batch API)
	// are gone.
	stopAll()
	batchModeOnCluster(t, url, tr)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// batchModeOnCluster runs a batch in batch mode (the provider's batch API,
// here the fake of worker/llm/batchapi/batchapitest) with a worker on the
// cluster: requests are collected, submitted as one provider job, polled
// and answered, and the batch ends with every item done and no online
// call. The CLI has no flag for the collector's window (30 s), so the
// worker is the library's, with a 1.5 s window.
func batchModeOnCluster(t *testing.T, url string, tr *jobs.Tracker) {
	t.Helper()
	const key = "sk-cluster-batch"
	chat := fakeserver.New(fakeserver.Options{APIKey: key})
	csrv := httptest.NewServer(chat)
	fake := batchapitest.NewBatch(batchapitest.BatchOptions{APIKey: key})
	bsrv := httptest.NewServer(fake)
	defer func() { chat.Close(); csrv.Close(); bsrv.Close() }()
	client := func(base string) *openai.Client {
		prof := llm.Profile{Preset: "cluster-test", Provider: llm.ProviderOpenAI, BaseURL: base, Model: fakeserver.DefaultModel,
			ContextTokens: 131072, MaxOutputTokens: 1024, MaxImages: 5, JSONSchema: true, TextOnly: true,
			ImageFormats: []string{"image/jpeg", "image/png"}, BatchAPI: llm.BatchOpenAI,
			Prices: llm.Prices{Currency: "USD", InputPerMillion: 0.2, OutputPerMillion: 0.6, BatchDiscount: 0.5}}
		c, err := openai.New(openai.Options{Profile: prof, APIKey: key, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bc, err := batchapi.NewOpenAI(batchapi.OpenAIOptions{Online: client(bsrv.URL + "/v1")})
	if err != nil {
		t.Fatal(err)
	}
	opt := jobstest.ConnOpt(t, url)
	open := func(ctx context.Context, loc string) (storage.Store, error) {
		return backends.Open(ctx, loc, backends.Config{})
	}
	w, err := worker.New(worker.Config{Redis: opt, Tracker: tr, Open: open, Model: client(csrv.URL + "/v1"), Batch: bc,
		Queues:      map[string]int{jobs.QueueCritical: 6, jobs.QueueDefault: 3}, // not nightly, where the retried batch above waits
		Concurrency: 2, BatchCollectDelay: 1500 * time.Millisecond, BatchPollInterval: 150 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("batch-mode worker: %v", err)
		}
	}()
	src, out := t.TempDir(), t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%d.txt", i)),
			fmt.Appendf(nil, "Service agreement %d between Acme Ltd and Beta GmbH. The term is %d months. Payment is due within 30 days.", i, 12+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q := asynq.NewClient(opt)
	defer q.Close()
	res, err := (&ingest.Ingester{Open: open, Queue: q, Tracker: tr}).Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: out,
		MaxRetry: 2, Options: jobs.Options{ModelMode: jobs.ModelBatch}}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(fake.Batches()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no provider batch job submitted in 30s")
		}
	}
	for _, id := range fake.Batches() {
		for {
			st, err := fake.Advance(id)
			if err != nil {
				t.Fatal(err)
			}
			if st == "completed" {
				break
			}
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := tr.Counts(ctx, res.BatchID)
		if err == nil && c.Finalized {
			if c.Done != 3 {
				t.Errorf("batch-mode batch: %+v, want 3 done", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch-mode batch not finalized: %+v, %v", c, err)
		}
	}
	for _, e := range manifest(t, filepath.Join(out, "manifest.jsonl")) {
		if e.Status != jobs.StatusDone || e.InputTokens == 0 {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
	}
	if s := chat.Stats(); s.Requests != 0 {
		t.Errorf("%d online calls in batch mode, want none", s.Requests)
	}
}
