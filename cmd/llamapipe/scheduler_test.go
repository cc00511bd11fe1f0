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

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The schedules file's checks are tested in ingest/schedule; here, that
// --check lists what it read.
func TestSchedulerCheckListsTheEntries(t *testing.T) {
	p := filepath.Join(t.TempDir(), "good.yaml")
	writeFile(t, p, "timezone: Europe/Berlin\nschedules:\n  - {name: nightly, cron: '0 2 * * *', sources: [s3://cat/img], out: s3://cat/cap, task: caption}\n")
	code, stdout, _ := runCLI(t, "scheduler", "--config", p, "--check")
	if code != 0 || !strings.Contains(stdout, "CRON_TZ=Europe/Berlin 0 2 * * *") {
		t.Fatalf("--check: exit %d: %s", code, stdout)
	}
	writeFile(t, p, "schedules:\n  - {name: a, cron: '61 * * * *', sources: [/x], out: /y}\n")
	if code, _, stderr := runCLI(t, "scheduler", "--config", p, "--check"); code != exitUsage || !strings.Contains(stderr, "entry 1 (a)") {
		t.Errorf("a bad file: exit %d (%s), want %d naming the entry", code, stderr, exitUsage)
	}
}

// TestScheduledIngestRunsOnWorkers: the scheduler enqueues an ingest task on
// its schedule, a worker runs it, and the batch it creates completes.
func TestScheduledIngestRunsOnWorkers(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "A lease between A and B.")
	cfg := filepath.Join(t.TempDir(), "schedules.yaml")
	writeFile(t, cfg, "schedules:\n  - name: every-second\n    cron: '@every 1s'\n    sources: ["+src+"]\n    out: "+out+"\n    queue: default\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 3)
	for _, args := range [][]string{
		{"--redis-url", url, "scheduler", "--config", cfg},
		{"--redis-url", url, "scheduler", "--config", cfg}, // a standby
		{"--redis-url", url, "worker", "--concurrency", "2"},
	} {
		go func() { done <- run(ctx, append([]string{"llamapipe"}, args...), io.Discard, io.Discard) }()
	}
	tr := jobs.NewTracker(rdb, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids, _ := tr.List(context.Background(), 0)
		finished := 0
		for _, id := range ids {
			if c, err := tr.Counts(context.Background(), id); err == nil && c.Finalized {
				finished++
			}
		}
		if finished > 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no scheduled batch finished in 30s (batches: %v)", ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	for range 3 {
		if code := <-done; code != 0 && code != exitCanceled {
			t.Errorf("process exit %d", code)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "a.txt.summary.json")); err != nil {
		t.Errorf("scheduled batch result: %v", err)
	}
}
