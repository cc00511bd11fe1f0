package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

func TestIngestWebhookFlag(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A lease between A and B."), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ftp://hooks.example/x", "hooks.example/x", "/x"} {
		if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--webhook", bad); code != exitUsage || !strings.Contains(stderr, "--webhook") {
			t.Errorf("--webhook %s: exit %d %q, want a usage error", bad, code, stderr)
		}
	}
	hook := "https://hooks.example/llamapipe?x=1"
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--webhook", hook)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := jobs.NewTracker(rdb, "").Get(context.Background(), strings.TrimSpace(stdout))
	if err != nil || b.Webhook != hook {
		t.Fatalf("batch webhook %q (%v), want %q", b.Webhook, err, hook)
	}
}

// TestWorkerCallsTheSignedWebhook: `ingest --webhook`, then a `worker`
// with the key in LLAMAPIPE_WEBHOOK_SECRET or in --webhook-secret-file.
func TestWorkerCallsTheSignedWebhook(t *testing.T) {
	for _, viaFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "env", true: "file"}[viaFile], func(t *testing.T) {
			url, rdb := jobstest.Redis(t, jobstest.DBCmd)
			tracker := jobs.NewTracker(rdb, "")
			secret := "key-" + t.Name()
			var mu sync.Mutex
			var verified []error
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				verified = append(verified, webhook.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute))
				mu.Unlock()
			}))
			defer srv.Close()
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A lease between A and B."), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--webhook", srv.URL)
			if code != 0 {
				t.Fatalf("ingest: exit %d: %s", code, stderr)
			}
			id := strings.TrimSpace(stdout)

			args := []string{"llamapipe", "--redis-url", url, "worker", "--concurrency", "2"}
			if viaFile {
				f := filepath.Join(t.TempDir(), "secret")
				if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--webhook-secret-file", f)
				t.Setenv(envWebhookSecret, "")
			} else {
				t.Setenv(envWebhookSecret, secret)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var out, errb lockedBuf
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, &out, &errb) }()
			deadline := time.Now().Add(time.Minute)
			var st jobs.WebhookState
			for {
				var ok bool
				var err error
				st, ok, err = tracker.WebhookState(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				if ok && st.Status != jobs.WebhookPending || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("worker: exit %d: %s", code, errb.String())
			}
			if st.Status != jobs.WebhookDelivered {
				t.Fatalf("webhook state %+v, want delivered", st)
			}
			if strings.Contains(out.String()+errb.String(), secret) {
				t.Fatal("the webhook secret appears in the worker's output")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(verified) != 1 || verified[0] != nil {
				t.Fatalf("calls verified: %v, want one good signature", verified)
			}
		})
	}
}

// lockedBuf is a bytes.Buffer safe for a running command and the test.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWorkerRefusesAnEmptyWebhookSecretFile(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "--redis-url", url, "worker", "--webhook-secret-file", f)
	if code != exitUsage || !strings.Contains(stderr, "is empty") {
		t.Fatalf("exit %d %q, want a usage error for the empty file", code, stderr)
	}
}

// TestRunWaitsForTheWebhookAndStatusShowsIt: `run --webhook` reports the
// delivery before it exits (its in-process workers stop with it), and
// `status` shows the delivery state.
func TestRunWaitsForTheWebhookAndStatusShowsIt(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	t.Setenv(envWebhookSecret, "run-secret")
	calls := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
	}))
	defer srv.Close()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A lease between A and B."), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", t.TempDir(), "--webhook", srv.URL)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "webhook: "+srv.URL+" delivered after 1 attempt(s), last answer HTTP 200") {
		t.Fatalf("run's output does not report the delivery:\n%s", stdout)
	}
	mu.Lock()
	if calls != 1 {
		t.Errorf("webhook called %d times, want 1", calls)
	}
	mu.Unlock()
	id := "" // from "manifest: OUT/batches/ID/manifest.jsonl" on stdout
	if m := regexp.MustCompile(`batches/([^/]+)/manifest\.jsonl`).FindStringSubmatch(stdout); m != nil {
		id = m[1]
	}
	code, out, errs := runCLI(t, "--redis-url", url, "status", id)
	if code != 0 || !strings.Contains(out, "webhook: "+srv.URL+" delivered") {
		t.Fatalf("status %s: exit %d: %s %s", id, code, out, errs)
	}
}
