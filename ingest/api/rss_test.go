package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// TestServeRSS measures `llamapipe serve`'s peak resident memory (VmHWM)
// for a submit of one 100 MB .txt and for items pages of a
// 100,000-item batch. It is a measurement, not a check: it runs only with
// LLAMAPIPE_RSS_BIN naming a llamapipe binary, and logs the numbers:
//
//	go build -o /tmp/llamapipe ./cmd/llamapipe
//	LLAMAPIPE_RSS_BIN=/tmp/llamapipe bash .ci/with-services go test -count=1 -run TestServeRSS -v ./ingest/api/
func TestServeRSS(t *testing.T) {
	bin := os.Getenv("LLAMAPIPE_RSS_BIN")
	if bin == "" {
		t.Skip("a measurement: set LLAMAPIPE_RSS_BIN to a llamapipe binary to run it")
	}
	url, rdb := jobstest.Redis(t, dbAPI)
	root := t.TempDir()
	src, out := filepath.Join(root, "src"), filepath.Join(root, "out")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBigText(t, filepath.Join(src, "big.txt"), 100<<20)

	// 1. One 100 MB .txt submit.
	addr, hwm := startServe(t, bin, url, root)
	before := hwm()
	body := fmt.Sprintf(`{"sources":[%q],"out":%q,"task":"summarize"}`, src, out)
	code, _ := call(t, "POST", "http://"+addr+"/v1/batches", body)
	t.Logf("submit of one 100 MB .txt: %d; serve peak RSS %.0f MB before, %.0f MB after", code, mb(before), mb(hwm()))

	// 2. Items pages of a 100,000-item batch.
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "20261207-000000-100000", Created: time.Now(), Spec: jobs.Spec{Sources: []string{src}, Task: jobs.TaskAuto, Out: out, Queue: jobs.QueueDefault, Tenant: "acme"}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				st := jobs.StatusDone
				if i%10 == 0 {
					st = jobs.StatusFailed
				}
				e := jobs.Entry{Item: fmt.Sprintf("%032x", i), Source: fmt.Sprintf("%s/folder/contract-%06d.pdf", src, i),
					Key: fmt.Sprintf("folder/contract-%06d.pdf", i), ETag: fmt.Sprintf("\"%032x\"", i), Size: 123456, Kind: jobs.KindDocument,
					Type: jobs.FilePDF, Status: st, Results: []string{fmt.Sprintf("folder/contract-%06d.summary.json", i)},
					InputTokens: 5000, OutputTokens: 1500, Cost: 0.001, Model: "llama-4-maverick", DurationMS: 4200, Pages: 9,
					ResultBase: fmt.Sprintf("folder/contract-%06d", i), Task: jobs.TaskSummarize}
				if st == jobs.StatusFailed {
					e.Error = "model: the provider answered 500 after 6 attempts"
				}
				if _, _, err := tr.Record(ctx, b.ID, e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	addr, hwm = startServe(t, bin, url, root)
	before = hwm()
	start := time.Now()
	for page := 1; page <= 10; page++ {
		if code, _ := call(t, "GET", fmt.Sprintf("http://%s/v1/batches/%s/items?page=%d&per_page=100", addr, b.ID, page), ""); code != http.StatusOK {
			t.Fatalf("items page %d: %d", page, code)
		}
	}
	t.Logf("10 items pages (page=1..10, per_page=100) of a %d-item batch in %v: serve peak RSS %.0f MB before, %.0f MB after",
		n, time.Since(start).Round(time.Millisecond), mb(before), mb(hwm()))
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// writeBigText writes size bytes of contract-like text lines.
func writeBigText(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i, n := 0, 0; n < size; i++ {
		k, _ := fmt.Fprintf(w, "Clause %d. The tenant pays the rent monthly, in advance, into the landlord's account.\n", i)
		n += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var apiAddrRE = regexp.MustCompile(`api on http://([^/]+)/v1/`)

// startServe starts `bin serve` on a free port and returns its address and
// a reader of its peak RSS in kB; it is stopped when the test ends.
func startServe(t *testing.T, bin, redisURL, allow string) (string, func() int64) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--allow", allow, "--redis-url", redisURL)
	cmd.Env = append(os.Environ(), "LLAMAPIPE_API_TOKENS=rss-measurement-token-0123456789 acme")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	addr := ""
	for sc.Scan() {
		if m := apiAddrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		t.Fatal("serve did not say where it listens")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	time.Sleep(500 * time.Millisecond) // settled after start
	return addr, func() int64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb
			}
		}
		t.Fatal("no VmHWM in /proc/PID/status")
		return 0
	}
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer rss-measurement-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}
