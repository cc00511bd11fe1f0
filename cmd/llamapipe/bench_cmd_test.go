package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/bench"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
)

// Test Redis databases of this file's tests (jobstest gives cmd DB 4).
const (
	dbBench = 5
	dbFault = 6
)

// benchTable parses the Markdown table bench prints: metric → (value, note).
func benchTable(t *testing.T, out string) map[string][2]string {
	t.Helper()
	if !strings.HasPrefix(out, "| metric | value | notes |\n|---|---|---|\n") {
		t.Fatalf("output does not start with the table header:\n%s", out)
	}
	rows := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[2:] {
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 3 {
			t.Fatalf("row %q does not have 3 cells", line)
		}
		rows[strings.TrimSpace(cells[0])] = [2]string{strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])}
	}
	return rows
}

var leadingNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?`)

// number reads the number a table value starts with.
func number(t *testing.T, rows map[string][2]string, metric string) float64 {
	t.Helper()
	r, ok := rows[metric]
	if !ok {
		t.Fatalf("no row %q in the table", metric)
	}
	s := leadingNumber.FindString(r[0])
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("row %q: value %q does not start with a number", metric, r[0])
	}
	return f
}

// TestBenchEndToEnd runs `llamapipe bench` with tiny numbers against the
// test Redis and checks the table it prints.
func TestBenchEndToEnd(t *testing.T) {
	url, _ := jobstest.Redis(t, dbBench)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"llamapipe", "--redis-url", url, "bench",
		"--photos", "6", "--photo-size", "640x480", "--docs", "4", "--pages", "2",
		"--concurrency", "4", "--latency", "20ms", "--jitter", "5ms", "--enqueue-tasks", "300", "--seed", "42"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	rows := benchTable(t, out.String())
	t.Logf("\n%s", out.String())

	if got := rows["items done"][0]; got != "10 / 10" {
		t.Errorf("items done %q, want 10 / 10", got)
	}
	for _, m := range []string{"throughput: photos", "throughput: documents", "throughput: all", "model requests/s",
		"ingest rate: photos", "ingest rate: documents", "enqueue rate", "CPU per image", "CPU per page", "CPU per item", "peak RSS"} {
		if v := number(t, rows, m); v <= 0 {
			t.Errorf("%s = %v, want > 0", m, rows[m][0])
		}
	}
	// Each item is one model request here (no faults; the documents fit
	// one request), and the fake server's latency is in every item's time.
	if note := rows["model requests/s"][1]; !strings.Contains(note, "10 requests, 0 faults") || !strings.Contains(note, "ideal C ÷ latency = 200.0") {
		t.Errorf("model requests/s note %q", note)
	}
	for _, m := range []string{"item latency p50 / p99: photos", "item latency p50 / p99: documents"} {
		var p50, p99 int
		if _, err := fmt.Sscanf(rows[m][0], "%d / %d ms", &p50, &p99); err != nil {
			t.Fatalf("%s: %q: %v", m, rows[m][0], err)
		}
		if p50 < 15 || p99 < p50 {
			t.Errorf("%s: p50 %d ms, p99 %d ms: want p50 at least the 20ms ± 5ms latency and p99 ≥ p50", m, p50, p99)
		}
	}
	if v := rows["Redis per queued task"]; v[0] == "" {
		t.Error("no Redis per queued task")
	}
	if !strings.Contains(rows["input: photos"][0], "6 JPEG 640x480") || !strings.Contains(rows["input: documents"][0], "4 txt/md × 2 pages") {
		t.Errorf("inputs: %q, %q", rows["input: photos"][0], rows["input: documents"][0])
	}

	// The same seed again on the same Redis: the photos look the same but
	// are new bytes, so no caption comes from the cache of the first run.
	out.Reset()
	code = run(context.Background(), []string{"llamapipe", "--redis-url", url, "bench", "--measure", "pipeline",
		"--photos", "2", "--photo-size", "640x480", "--docs", "1", "--pages", "1", "--concurrency", "4", "--latency", "1ms", "--seed", "42"}, &out, &errb)
	if code != 0 {
		t.Fatalf("second run: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if note := benchTable(t, out.String())["model requests/s"][1]; !strings.Contains(note, "3 requests") {
		t.Errorf("second run with the same seed: model requests/s note %q, want 3 requests (no cached captions)", note)
	}

	// Bad flags are usage errors.
	for _, args := range [][]string{{"--photo-size", "big"}, {"--provider", "bedrock"}, {"--fault-rate", "2"}, {"--measure", "everything"}} {
		code := run(context.Background(), append([]string{"llamapipe", "--redis-url", url, "bench"}, args...), &out, &errb)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestBenchS3Out generates the batch in MinIO (--out s3://...) and reads
// inputs and writes results there.
func TestBenchS3Out(t *testing.T) {
	url, _ := jobstest.Redis(t, dbBench)
	st := storagetest.NewS3Store(t, "")
	cfg := storagetest.S3Config(t)
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	loc, err := storage.ParseLocation(st.Location())
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"llamapipe", "--redis-url", url, "--s3-endpoint", cfg.Endpoint, "--s3-path-style", "--s3-region", "us-east-1",
		"bench", "--out", "s3://" + loc.Bucket + "/runs", "--photos", "2", "--photo-size", "320x240", "--docs", "2", "--pages", "1",
		"--concurrency", "2", "--latency", "5ms", "--measure", "pipeline"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if rows := benchTable(t, out.String()); rows["items done"][0] != "4 / 4" {
		t.Errorf("items done %q, want 4 / 4", rows["items done"][0])
	}
	var inputs, results, own int
	for info, err := range st.List(context.Background(), "runs/", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(info.Key, "/input/"):
			inputs++
		case strings.Contains(info.Key, "/batches/") && strings.HasSuffix(info.Key, "/"+jobs.ManifestKey):
			own++ // each batch's own manifest
		case strings.HasSuffix(info.Key, "/"+jobs.ManifestKey):
			results++ // the output root's copy of the latest
		}
	}
	if inputs != 4 || results != 2 || own != 2 {
		t.Errorf("in the bucket: %d inputs (want 4), %d root manifests (want 2) and %d batch manifests (want 2)", inputs, results, own)
	}
}

// TestFaultsEveryItemCompletes runs `llamapipe run` against the fake model
// server answering about 30 % of requests with 429, 500 or garbage: every
// item completes, and only the 500s and garbage answers cost attempts (a 429
// is not a failure).
func TestFaultsEveryItemCompletes(t *testing.T) {
	url, _ := jobstest.Redis(t, dbFault)
	const key = "sk-fault-test-0123456789"
	// Seed 21 draws 429, 500 and garbage among the first eight requests.
	fs := fakeserver.New(fakeserver.Options{Rate429: 0.15, Rate500: 0.1, RateGarbage: 0.1, Seed: 21, APIKey: key})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	defer fs.Close()

	src, out := t.TempDir(), t.TempDir()
	const photos, docs = 4, 4
	for i := range photos {
		data, err := bench.Photo(320, 240, 99, uint64(i), "test")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("p%d.jpg", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range docs {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("c%d.txt", i)), bench.Document(i, 1, false, 99, "test"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LLAMAPIPE_API_KEY", key)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"llamapipe", "--redis-url", url, "run", src, "--out", out, "--concurrency", "4",
		"--provider", "openai", "--base-url", srv.URL + "/v1", "--model", "llama-4-scout"}, &stdout, &stderr)
	st := fs.Stats()
	t.Logf("fake server: %+v", st)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if st.RateLimited == 0 || st.ServerErrors == 0 || st.Garbage == 0 {
		t.Fatalf("the run did not meet every kind of fault: %+v", st)
	}
	if st.Unauthorized != 0 || st.BadRequests != 0 || st.Hangs != 0 {
		t.Errorf("unexpected answers: %+v", st)
	}
	es := manifest(t, filepath.Join(out, jobs.ManifestKey))
	seen := map[string]bool{}
	retries := 0
	for _, e := range es {
		seen[e.Source] = true
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
		retries += e.Attempts - 1
	}
	if len(es) != photos+docs || len(seen) != photos+docs {
		t.Fatalf("%d manifest entries for %d sources, want %d", len(es), len(seen), photos+docs)
	}
	// One successful request per item; every fault cost one more request.
	if st.OK != photos+docs || st.Requests != st.OK+st.Faults() {
		t.Errorf("requests: %+v, want %d OK and one request per fault besides", st, photos+docs)
	}
	// Attempts count the 500s and garbage answers, never the 429s.
	if want := int(st.ServerErrors + st.Garbage); retries != want {
		t.Errorf("manifest shows %d retried attempts; want %d (500s + garbage), the %d 429s not counted", retries, want, st.RateLimited)
	}
}

func TestBenchUnchangedCatalogMakesNoModelCalls(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBBench)
	code, stdout, stderr := runCLI(t, "--redis-url", url, "bench", "--measure", "unchanged", "--catalog", "60", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"| skipped as unchanged | 60 |", "| model calls | 0 |", "| re-run to manifest |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
