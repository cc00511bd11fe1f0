package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// queuedOf counts batch's item tasks waiting in the queue (pending,
// scheduled, retrying) and, with active, those running too.
func queuedOf(t *testing.T, insp *asynq.Inspector, batch string, active bool) int {
	t.Helper()
	n := 0
	type lister func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	lists := []lister{insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks}
	if active {
		lists = append(lists, insp.ListActiveTasks)
	}
	for _, list := range lists {
		tasks, err := list(jobs.QueueDefault, asynq.PageSize(1000))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			if ti.Type != jobs.TypeItem {
				continue
			}
			if id, err := itemtask.BatchOf(ti.Payload); err == nil && id == batch {
				n++
			}
		}
	}
	return n
}

// A batch of many items with a bound of 5 completes with every item in its
// manifest once, and never has more than 5 items waiting in the queue, also
// after its ingest returned: the workers' feed tasks queue the rest.
func TestBoundedBatchCompletes(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	const n = 40
	for i := range n {
		write(t, src, fmt.Sprintf("docs/%03d.txt", i), []byte(fmt.Sprintf("Contract %d between A and B.", i)))
	}
	write(t, src, "docs/empty.txt", nil) // skipped by ingest
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tr := jobs.NewTracker(rdb, "")
	feeds := feed.New(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr, Feeds: feeds}
	res, err := in.Run(ctx, ingest.Options{PageSize: 7,
		Spec: jobs.Spec{Sources: []string{src}, Out: out, MaxQueued: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != n+1 || res.Skipped != 1 {
		t.Fatalf("result %+v, want %d items, 1 skipped", res, n+1)
	}
	if q := queuedOf(t, insp, res.BatchID, true); q != 5 {
		t.Fatalf("%d items queued after ingest, want the bound, 5", q)
	}
	// Ingest has returned; only workers run from here.
	most := drain(t, url, tr, feeds, in, res.BatchID)
	if most > 5 {
		t.Fatalf("%d items waiting in the queue at once, over the bound of 5", most)
	}
	checkOnce(t, tr, res.BatchID, n+1)
}

// drain runs a worker (with the feed task) until batch is finalized and
// returns the most of its items seen queued at once.
func drain(t *testing.T, url string, tr *jobs.Tracker, feeds *feed.Store, in *ingest.Ingester, batch string) int {
	t.Helper()
	ctx := context.Background()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	res := struct{ BatchID string }{batch}
	const concurrency = 3
	w, err := worker.New(worker.Config{Redis: jobstest.ConnOpt(t, url), Tracker: tr, Open: open,
		Model: offline.New(offline.Options{}), Concurrency: concurrency, ShutdownTimeout: 5 * time.Second, Feeds: feeds,
		Handlers: map[string]asynq.Handler{feed.TypeFeed: asynq.HandlerFunc(in.TopUp)}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(wctx) }()
	defer func() { stop(); wg.Wait() }()
	most := 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := tr.Counts(ctx, res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Finalized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not finalized: %+v", c)
		}
		most = max(most, queuedOf(t, insp, res.BatchID, false))
		// A task whose item is recorded is still active until its handler
		// returns: at most one a worker slot over the bound.
		if q := queuedOf(t, insp, res.BatchID, true); q > 5+concurrency {
			t.Fatalf("%d items queued or running, over the bound of 5 + %d worker slots", q, concurrency)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return most
}

// checkOnce checks that batch's manifest has every one of n sources once.
func checkOnce(t *testing.T, tr *jobs.Tracker, batch string, n int) {
	t.Helper()
	entries, err := tr.Entries(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Source]++
		if e.Status != jobs.StatusDone && e.Status != jobs.StatusSkipped {
			t.Errorf("%s: %s %s", e.Source, e.Status, e.Error)
		}
	}
	if len(entries) != n || len(seen) != n {
		t.Fatalf("%d entries for %d sources, want %d each", len(entries), len(seen), n)
	}
}

// An ingest killed mid-listing continues where it stopped: the objects of
// the pages it wrote are not listed or read again, and the batch completes
// with each once.
func TestBoundedListingResumes(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	src, out := t.TempDir(), t.TempDir()
	const n = 50
	for i := range n {
		write(t, src, fmt.Sprintf("%03d.txt", i), []byte(fmt.Sprintf("Contract %d between A and B.", i)))
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	feeds := feed.New(rdb, "")
	var gets, stopAt atomic.Int64
	ctx, kill := context.WithCancel(context.Background())
	counting := func(ctx context.Context, loc string) (storage.Store, error) {
		st, err := open(ctx, loc)
		if err != nil || loc != src {
			return st, err
		}
		return stopAfter{Store: st, n: &stopAt, gets: &gets, cancel: kill}, nil
	}
	in := &ingest.Ingester{Open: counting, Queue: client, Tracker: tr, Feeds: feeds}
	o := ingest.Options{PageSize: 10, BatchID: "resume-1", Resume: true, Concurrency: 2,
		Spec: jobs.Spec{Sources: []string{src}, Out: out, MaxQueued: 5}}
	stopAt.Store(25) // killed while classifying the third page
	if _, err := in.Run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v, want it stopped", err)
	}
	st, _, err := feeds.Get(context.Background(), "resume-1")
	if err != nil || st.Listed != 20 || st.Done {
		t.Fatalf("feed after the kill: %+v, %v; want 20 listed, not done", st, err)
	}
	gets.Store(0)
	stopAt.Store(-1)
	res, err := in.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != n || gets.Load() != n-20 {
		t.Fatalf("resumed: total %d, %d objects read; want %d and %d", res.Total, gets.Load(), n, n-20)
	}
	drain(t, url, tr, feeds, in, res.BatchID)
	checkOnce(t, tr, res.BatchID, n)
}

// stopAfter is a store that cancels a context after its n-th Get of an
// object (its IgnoreFile not counted): an ingest killed mid-listing.
type stopAfter struct {
	storage.Store
	n, gets *atomic.Int64
	cancel  context.CancelFunc
}

func (s stopAfter) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, error) {
	if key == ingest.IgnoreFile { // read once per run, not an object of the batch
		return s.Store.Get(ctx, key, rng)
	}
	if s.gets.Add(1) == s.n.Load() {
		s.cancel()
	}
	return s.Store.Get(ctx, key, rng)
}

// A bounded batch lists emails' attachments as items, as an unbounded one
// does (they were dropped before): the same total, and every item once in
// the manifest after the workers drained the pages.
func TestBoundedBatchListsEmailAttachments(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	for _, n := range []string{"with_pdf_and_jpeg.eml", "nested_message.eml"} {
		b, err := os.ReadFile(filepath.Join("..", "jobs", "mailparts", "testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		write(t, src, "inbox/"+n, b)
	}
	for i := range 3 {
		write(t, src, fmt.Sprintf("inbox/note%d.txt", i), []byte(fmt.Sprintf("Contract %d between A and B.", i)))
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	feeds := feed.New(rdb, "")
	unbounded, err := (&ingest.Ingester{Open: open, Queue: client, Tracker: tr}).Run(ctx,
		ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Queue: jobs.QueueNightly}})
	if err != nil {
		t.Fatal(err)
	}
	if unbounded.Total <= 5 {
		t.Fatalf("unbounded: %d items, want the 5 objects and the emails' attachments", unbounded.Total)
	}
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr, Feeds: feeds}
	res, err := in.Run(ctx, ingest.Options{PageSize: 2, Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), MaxQueued: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != unbounded.Total {
		t.Fatalf("bounded: %d items, unbounded %d", res.Total, unbounded.Total)
	}
	drain(t, url, tr, feeds, in, res.BatchID)
	checkOnce(t, tr, res.BatchID, res.Total)
	entries, err := tr.Entries(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	parts, seqs := 0, map[int64]string{}
	for _, e := range entries {
		if strings.Contains(e.Source, "#part=") {
			parts++
		}
		// Each item its own number (the recorded bitmap's bit), 1..Total.
		if e.Seq < 1 || e.Seq > int64(res.Total) || seqs[e.Seq] != "" {
			t.Errorf("%s: seq %d (also %q), want a number of its own in 1..%d", e.Source, e.Seq, seqs[e.Seq], res.Total)
		}
		seqs[e.Seq] = e.Source
	}
	if parts != res.Total-5 {
		t.Errorf("%d attachments in the manifest, want %d", parts, res.Total-5)
	}
}
