package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// `llamapipe watch` takes files as they land in a folder; with --roll-every 2
// the first two make a batch that is sealed and finalized with its manifest.
// A watch entry in the schedules file runs under the scheduler the same way.
func TestWatchCommandAndScheduledWatch(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	src2, out2 := t.TempDir(), t.TempDir()
	cfg := filepath.Join(t.TempDir(), "schedules.yaml")
	writeFile(t, cfg, "schedules:\n  - name: legal-inbox\n    watch: {interval: 200ms, settle: 0s}\n    sources: ["+src2+"]\n    out: "+out2+"\n")
	if code, stdout, stderr := runCLI(t, "scheduler", "--config", cfg, "--check"); code != 0 || !strings.Contains(stdout, "watch legal-inbox\t"+src2) {
		t.Fatalf("--check: exit %d: %s %s", code, stdout, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 3)
	for _, args := range [][]string{
		{"--redis-url", url, "watch", src, "--out", out, "--name", "inbox", "--interval", "200ms", "--settle", "0s", "--roll-every", "2"},
		{"--redis-url", url, "scheduler", "--config", cfg},
		{"--redis-url", url, "worker", "--concurrency", "2"},
	} {
		go func() { done <- run(ctx, append([]string{"llamapipe"}, args...), io.Discard, io.Discard) }()
	}
	writeFile(t, filepath.Join(src, "a.txt"), "A lease between Acme and Beta for twelve months.")
	writeFile(t, filepath.Join(src2, "nda.txt"), "A mutual confidentiality agreement between Gamma and Delta.")
	time.Sleep(300 * time.Millisecond)
	writeFile(t, filepath.Join(src, "b.txt"), "A supply agreement between Acme and Omega, payment within 30 days.")

	tr := jobs.NewTracker(rdb, "")
	first := "inbox-" + time.Now().UTC().Format("20060102") + "-001"
	waitUntil(t, "the first rolling batch to be finalized", 60*time.Second, func() bool {
		c, err := tr.Counts(context.Background(), first)
		return err == nil && c.Finalized
	})
	es := manifest(t, filepath.Join(out, "batches", first, "manifest.jsonl"))
	if len(es) != 2 || es[0].Status != jobs.StatusDone || es[1].Status != jobs.StatusDone {
		t.Fatalf("manifest %+v, want a.txt and b.txt done", es)
	}
	waitUntil(t, "the scheduled watch's result", 60*time.Second, func() bool { return exists(filepath.Join(out2, "nda.txt.summary.json")) })
	b, err := tr.Get(context.Background(), "legal-inbox-"+time.Now().UTC().Format("20060102"))
	if err != nil || b.Watch != "legal-inbox" || b.Queue != jobs.QueueDefault {
		t.Errorf("scheduled watch batch %+v (%v)", b, err)
	}
	cancel()
	for range 3 {
		if code := <-done; code != 0 && code != exitCanceled {
			t.Errorf("process exit %d", code)
		}
	}
}

func TestWatchRefusesBadSettings(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	for name, args := range map[string][]string{
		"no out":       {"watch", src},
		"bad events":   {"watch", src, "--out", t.TempDir(), "--events", "ftp://x/y"},
		"no list key":  {"watch", src, "--out", t.TempDir(), "--events", "redis://127.0.0.1:1/0"},
		"bad timezone": {"watch", src, "--out", t.TempDir(), "--timezone", "Mars/Olympus"},
		"bad name":     {"watch", src, "--out", t.TempDir(), "--name", "../x"},
	} {
		code, _, stderr := runCLI(t, append([]string{"--redis-url", url}, args...)...)
		if code != exitUsage || stderr == "" {
			t.Errorf("%s: exit %d (%s), want %d with a message", name, code, stderr, exitUsage)
		}
	}
}

func TestModelModeFlag(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "A lease between A and B.")
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--model-mode", "batch"); code != exitUsage || !strings.Contains(stderr, "no batch API") {
		t.Errorf("batch mode with the offline model: exit %d %q, want a usage error", code, stderr)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--model-mode", "soon"); code != exitUsage || !strings.Contains(stderr, "--model-mode") {
		t.Errorf("unknown mode: exit %d %q", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--preset", "groq", "--model-mode", "batch", "--queue", "nightly")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := jobs.NewTracker(rdb, "").Get(context.Background(), strings.TrimSpace(stdout))
	if err != nil || b.Options.ModelMode != jobs.ModelBatch {
		t.Fatalf("batch %+v (%v), want model mode batch", b.Options, err)
	}
}
