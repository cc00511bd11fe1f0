package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"llamapipe"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func manifest(t *testing.T, path string) []jobs.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []jobs.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e jobs.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

// TestRunExamples is `make demo`: the bundled examples with the offline
// provider, nothing to configure.
func TestRunExamples(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "--redis-url", url, "run", "../../examples", "--out", out, "--concurrency", "4")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`manifest: \S+/batches/\S+/manifest\.jsonl\nreport: +\S+/batches/\S+/report\.md`).MatchString(stdout) || !strings.Contains(stdout, filepath.Join(out, "batches")) {
		t.Errorf("stdout does not say where the manifest and report are: %q", stdout)
	}
	es := manifest(t, filepath.Join(out, "manifest.jsonl"))
	files := 0
	_ = filepath.WalkDir("../../examples", func(p string, d os.DirEntry, err error) error {
		// examples/.llamapipeignore keeps itself and LICENSES.md out.
		if err == nil && !d.IsDir() && d.Name() != ".llamapipeignore" && d.Name() != "LICENSES.md" {
			files++
		}
		return nil
	})
	if len(es) != files {
		t.Fatalf("%d manifest entries for %d files in examples/", len(es), files)
	}
	for _, e := range es { // dandelions.avif too, since AVIF is decoded
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
	}
	for _, k := range []string{"contracts/equipment-lease.txt.summary.json", "contracts/equipment-lease.txt.summary.md", "products/fig-bowl-cutout.gif.caption.json"} {
		if _, err := os.Stat(filepath.Join(out, k)); err != nil {
			t.Errorf("result %s: %v", k, err)
		}
	}
}

func TestIngestPrintsOnlyTheBatchIDAndStatusFollows(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A contract between A and B."), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	if strings.Contains(id, "\n") || !strings.HasPrefix(id, time.Now().UTC().Format("20060102")) {
		t.Fatalf("stdout %q is not just a batch ID", stdout)
	}
	code, stdout, _ = runCLI(t, "--redis-url", url, "status", id)
	if code != 0 || !strings.Contains(stdout, "1 items") || !strings.Contains(stdout, "running") {
		t.Fatalf("status: exit %d, %q", code, stdout)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "status", "no-such-batch"); code == 0 || !strings.Contains(stderr, "no such batch") {
		t.Fatalf("unknown batch: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "ingest", src, "--out", t.TempDir()); code != exitUsage || !strings.Contains(stderr, "LLAMAPIPE_REDIS_URL") {
		t.Fatalf("no redis: exit %d, %q", code, stderr)
	}
}

func TestEnvironmentTwinsOfFlags(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("Text."), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LLAMAPIPE_REDIS_URL", url)
	t.Setenv("LLAMAPIPE_OUT", t.TempDir())
	t.Setenv("LLAMAPIPE_TASK", "caption")
	code, stdout, stderr := runCLI(t, "ingest", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1 skipped") {
		t.Fatalf("LLAMAPIPE_TASK=caption did not skip the text file: %q %q", stdout, stderr)
	}
}

// TestWorkerKilledMidBatch kills a worker process with SIGKILL while it has
// tasks in flight, starts another, and checks every item ends in the
// manifest exactly once.
func TestWorkerKilledMidBatch(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	bin := buildBinary(t)
	var calls atomic.Int64
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		calls.Add(1)
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"llama-4-scout","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}`,
			`{"document_type":"contract","parties":[],"effective_date":{"value":"","quote":"","pages":[]},"key_dates":[],"term":{"value":"","quote":"","pages":[]},"renewal":{"value":"","automatic":false,"notice":"","quote":"","pages":[]},"termination_rights":{"value":"","quote":"","pages":[]},"payment_terms":{"value":"","quote":"","pages":[]},"liability_caps":{"value":"","quote":"","pages":[]},"indemnities":{"value":"","quote":"","pages":[]},"confidentiality":{"value":"","quote":"","pages":[]},"governing_law_and_venue":{"value":"","quote":"","pages":[]},"obligations":[],"risky_clauses":[],"executive_summary":"A contract."}`)
	}))
	defer model.Close()

	src, out := t.TempDir(), t.TempDir()
	const n = 24
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%02d.txt", i)), []byte(fmt.Sprintf("Contract %d between A and B.", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	envv := append(os.Environ(), "LLAMAPIPE_REDIS_URL="+url, "LLAMAPIPE_PROVIDER=openai", "LLAMAPIPE_BASE_URL="+model.URL+"/v1",
		"LLAMAPIPE_MODEL=llama-4-scout", "LLAMAPIPE_API_KEY=test-key", "LLAMAPIPE_LOG_FORMAT=json")
	cmd := exec.Command(bin, "ingest", src, "--out", out)
	cmd.Env = envv
	idb, err := cmd.Output()
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	id := strings.TrimSpace(string(idb))

	startWorker := func(name string) *exec.Cmd {
		w := exec.Command(bin, "worker", "--concurrency", "4")
		w.Env = envv
		logf, _ := os.Create(filepath.Join(t.TempDir(), name+".log"))
		w.Stderr = logf
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w1 := startWorker("w1")
	for calls.Load() < 6 {
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := time.Now()
	if err := w1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w1.Wait()
	w2 := startWorker("w2")
	defer func() {
		_ = w2.Process.Signal(syscall.SIGTERM)
		_ = w2.Wait()
	}()
	st := exec.Command(bin, "status", id, "--wait")
	st.Env = envv
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	done := make(chan []byte, 1)
	go func() { b, _ := st.Output(); done <- b }()
	select {
	case b := <-done:
		if st.ProcessState.ExitCode() != 0 {
			t.Fatalf("status --wait: exit %d: %s", st.ProcessState.ExitCode(), b)
		}
	case <-ctx.Done():
		_ = st.Process.Kill()
		t.Fatal("batch did not finish within 4 minutes after the worker was killed")
	}
	t.Logf("recovered %s after SIGKILL", time.Since(killedAt).Round(time.Second))
	es := manifest(t, filepath.Join(out, "manifest.jsonl"))
	seen := map[string]int{}
	for _, e := range es {
		seen[e.Source]++
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
	}
	if len(seen) != n || len(es) != n {
		t.Fatalf("%d entries for %d distinct sources, want %d each", len(es), len(seen), n)
	}
}

// buildBinary builds the llamapipe command for tests that run processes.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "llamapipe")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestTwoWorkerProcessesShareOneRateLimit runs two worker processes with
// --rpm 10 against one fake provider: together they stay within one quota
// (a burst of 10 plus the refill), and both get a share.
func TestTwoWorkerProcessesShareOneRateLimit(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	bin := buildBinary(t)
	var total atomic.Int64
	var perWorker [3]atomic.Int64
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		if i := r.Header.Get("X-Worker"); i == "1" || i == "2" {
			perWorker[i[0]-'0'].Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}`,
			`{"document_type":"contract","parties":[],"effective_date":{"value":"","quote":"","pages":[]},"key_dates":[],"term":{"value":"","quote":"","pages":[]},"renewal":{"value":"","automatic":false,"notice":"","quote":"","pages":[]},"termination_rights":{"value":"","quote":"","pages":[]},"payment_terms":{"value":"","quote":"","pages":[]},"liability_caps":{"value":"","quote":"","pages":[]},"indemnities":{"value":"","quote":"","pages":[]},"confidentiality":{"value":"","quote":"","pages":[]},"governing_law_and_venue":{"value":"","quote":"","pages":[]},"obligations":[],"risky_clauses":[],"executive_summary":"A contract."}`)
	}))
	defer model.Close()
	src := t.TempDir()
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%02d.txt", i)), []byte(fmt.Sprintf("Contract %d.", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	envv := append(os.Environ(), "LLAMAPIPE_REDIS_URL="+url, "LLAMAPIPE_PROVIDER=openai", "LLAMAPIPE_BASE_URL="+model.URL+"/v1",
		"LLAMAPIPE_MODEL=llama-4-scout", "LLAMAPIPE_API_KEY=k", "LLAMAPIPE_RPM=10")
	ing := exec.Command(bin, "ingest", src, "--out", t.TempDir())
	ing.Env = envv
	if out, err := ing.CombinedOutput(); err != nil {
		t.Fatalf("ingest: %v: %s", err, out)
	}
	start := time.Now()
	var procs []*exec.Cmd
	for i := 1; i <= 2; i++ {
		w := exec.Command(bin, "worker", "--concurrency", "4", "--shutdown-timeout", "1s", "--header", fmt.Sprintf("X-Worker=%d", i))
		w.Env = envv
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, w)
	}
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	time.Sleep(6 * time.Second)
	n, elapsed := total.Load(), time.Since(start)
	// Burst 10, refilled at 10 per minute; one extra for rounding.
	limit := 10 + int64(elapsed.Seconds()*10/60) + 1
	t.Logf("%d requests in %s from two processes (worker 1: %d, worker 2: %d)", n, elapsed.Round(time.Millisecond), perWorker[1].Load(), perWorker[2].Load())
	if n > limit {
		t.Fatalf("%d requests in %s: the two processes did not share the 10 rpm limit (at most %d)", n, elapsed, limit)
	}
	if n < 10 {
		t.Fatalf("only %d requests: the shared limit should allow a burst of 10", n)
	}
	if perWorker[1].Load() == 0 || perWorker[2].Load() == 0 {
		t.Errorf("one process got no share: worker 1 %d, worker 2 %d", perWorker[1].Load(), perWorker[2].Load())
	}
}

// TestBadKeyStopsTheRunWithOneMessage: the provider refuses the key; the
// run ends quickly with exit status 1 and the reason said once.
func TestBadKeyStopsTheRunWithOneMessage(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	var calls atomic.Int64
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer right-key" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
		http.Error(w, "unexpected", http.StatusInternalServerError)
	}))
	defer model.Close()
	src := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%02d.txt", i)), []byte("A contract."), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LLAMAPIPE_API_KEY", "wrong-key-12345")
	code, stdout, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", t.TempDir(), "--concurrency", "2",
		"--provider", "openai", "--base-url", model.URL+"/v1", "--model", "llama-4-scout")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, "Incorrect API key provided"); n != 1 {
		t.Errorf("the reason appears %d times on stderr, want once:\n%s", n, stderr)
	}
	if strings.Contains(stderr+stdout, "wrong-key-12345") {
		t.Error("the API key appears in the output")
	}
	if n := calls.Load(); n > 4 {
		t.Errorf("%d requests reached the provider after it refused the key; want the batch stopped at once", n)
	}
}

func TestCancelThenRetryFromTheCommandLine(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%d.txt", i)), []byte("A contract."), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", out)
	if code != 0 {
		t.Fatalf("ingest: %d %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	// No worker runs: every item is still queued when the batch is cancelled.
	code, stdout, stderr = runCLI(t, "--redis-url", url, "cancel", id)
	if code != 0 || !strings.Contains(stderr, "3 queued items removed") || !strings.Contains(stdout, "3 cancelled") {
		t.Fatalf("cancel: exit %d\n%s\n%s", code, stdout, stderr)
	}
	c, err := jobs.NewTracker(rdb, "").Counts(context.Background(), id)
	if err != nil || c.Cancelled != 3 || !c.Complete() {
		t.Fatalf("counts after cancel: %+v %v", c, err)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "retry", id); code == 0 || !strings.Contains(stderr, "no failed items") {
		t.Fatalf("retry of a batch without failures: exit %d %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, "--redis-url", url, "retry", id, "--cancelled")
	if code != 0 || !strings.Contains(stderr, "retries 3 items") {
		t.Fatalf("retry --cancelled: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "--redis-url", url, "status", strings.TrimSpace(stdout))
	if code != 0 || !strings.Contains(stdout, "retries the failed items of batch "+id) {
		t.Fatalf("status of the retry batch: %s", stdout)
	}
}

// A model that takes no text-only requests (DashScope's Llama 3.2 vision)
// refuses a document batch up front, before anything is queued.
func TestImageOnlyModelRefusesDocumentsUpFront(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A contract."), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--preset", "dashscope")
	if code != exitUsage || !strings.Contains(stderr, "does not accept requests without an image") || !strings.Contains(stderr, "--task caption") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if ids, _ := jobs.NewTracker(rdb, "").List(context.Background(), 0); len(ids) != 0 {
		t.Errorf("a batch was created: %v", ids)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--preset", "dashscope", "--task", "caption"); code != 0 {
		t.Errorf("caption batch refused: %s", stderr)
	}
	// --task summarize is refused whatever the folder holds.
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--preset", "dashscope", "--task", "summarize"); code != exitUsage {
		t.Errorf("summarize batch: exit %d: %s", code, stderr)
	}
}

// The refusal follows what was listed: an image-only folder runs under
// --task auto with an image-only model, and a folder with images and
// documents runs with its documents skipped for that reason (in the plan
// and the manifest).
func TestImageOnlyModelRunsImageFolders(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	img := jobstest.ReadFile(t, jobstest.CorpusFiles(t, "*.png", "images", "png")[0])
	imagesOnly, mixed := t.TempDir(), t.TempDir()
	for _, dir := range []string{imagesOnly, mixed} {
		if err := os.WriteFile(filepath.Join(dir, "a.png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mixed, "b.txt"), []byte("A contract."), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", imagesOnly, "--out", t.TempDir(), "--preset", "dashscope")
	if code != 0 || !strings.Contains(stderr, "1 queued, 0 skipped") {
		t.Fatalf("image-only folder: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, "--redis-url", url, "ingest", mixed, "--out", t.TempDir(), "--preset", "dashscope")
	if code != 0 || !strings.Contains(stderr, "1 queued, 1 skipped") {
		t.Fatalf("mixed folder: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	var skipped []jobs.Entry
	err := jobs.NewTracker(rdb, "").EachEntry(context.Background(), id, func(e jobs.Entry) error {
		if e.Status == jobs.StatusSkipped {
			skipped = append(skipped, e)
		}
		return nil
	})
	if err != nil || len(skipped) != 1 || !strings.HasSuffix(skipped[0].Source, "b.txt") ||
		!strings.Contains(skipped[0].Error, "does not accept requests without an image") {
		t.Fatalf("skipped entries %+v (%v): want b.txt with the model's reason", skipped, err)
	}
	code, stdout, stderr = runCLI(t, "plan", mixed, "--preset", "dashscope")
	if code != 0 || !strings.Contains(stdout, "documents cannot be summarized with it") {
		t.Fatalf("plan of the mixed folder: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestPromptOverrideFile: --prompt replaces an embedded template; its
// version is recorded in the results and changes the fingerprint, so a
// re-run with new wording is not skipped as unchanged.
func TestPromptOverrideFile(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("This lease is made between A and B."), 0o644); err != nil {
		t.Fatal(err)
	}
	emb, err := os.ReadFile("../../prompts/templates/summary.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	override := filepath.Join(t.TempDir(), "summary.tmpl")
	if err := os.WriteFile(override, []byte(strings.Replace(string(emb), "version: summary/2", "version: summary/acme-2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	run1 := func(extra ...string) []jobs.Entry {
		t.Helper()
		code, _, stderr := runCLI(t, append([]string{"--redis-url", url, "run", src, "--out", out}, extra...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return manifest(t, filepath.Join(out, "manifest.jsonl"))
	}
	if es := run1(); es[0].Status != jobs.StatusDone {
		t.Fatalf("first run: %+v", es)
	}
	es := run1("--prompt", override)
	if es[0].Status != jobs.StatusDone {
		t.Fatalf("new prompt wording was skipped as unchanged: %+v", es[0])
	}
	b, err := os.ReadFile(filepath.Join(out, "a.txt.summary.json"))
	if err != nil || !strings.Contains(string(b), `"prompt_version": "summary/acme-2"`) {
		t.Fatalf("result does not record the override's version: %s %v", b, err)
	}
	if es := run1("--prompt", override); es[0].Status != jobs.StatusSkipped {
		t.Fatalf("same override again should be unchanged: %+v", es[0])
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", out, "--prompt", filepath.Join(src, "a.txt")); code != exitUsage || !strings.Contains(stderr, "--prompt") {
		t.Fatalf("a bad prompt file: exit %d %s", code, stderr)
	}
}
