package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// A batch submitted through the API with a small max_queued is bounded
// like the CLI's: right after the submit no more than the bound are
// queued, the workers' feed tasks queue the rest, the batch completes with
// every item once in its manifest, and no more than the bound ever wait.
// A body asking for more than the server's --max-queued gets the server's.
func TestSubmitIsBounded(t *testing.T) {
	const bound, n = 4, 30
	var feeds *feed.Store
	e := newEnv(t, func(c *Config) {
		feeds = feed.New(c.Redis, "")
		c.Ingester.Feeds = feeds
		c.Defaults.MaxQueued = 50
	})
	for i := range n {
		p := filepath.Join(e.src, "many", fmt.Sprintf("%03d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("Contract %d between A and B.", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body := e.submitBody()
	body["max_queued"] = bound
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, nil, &r); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	total := n + 3 // and newEnv's three files (one empty: skipped)
	if r.Total != total {
		t.Fatalf("submit answered %d items, want %d", r.Total, total)
	}
	b, err := e.tracker.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.MaxQueued != bound {
		t.Fatalf("batch bound %d, want the asked %d", b.MaxQueued, bound)
	}
	if q := e.queued(r.ID, true); q != bound {
		t.Fatalf("%d items queued after the submit, want the bound, %d", q, bound)
	}
	most := e.drain(feeds, r.ID, bound)
	if most > bound {
		t.Fatalf("%d items waiting at once, over the bound of %d", most, bound)
	}
	entries, err := e.tracker.Entries(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, en := range entries {
		seen[en.Source]++
		if en.Status != jobs.StatusDone && en.Status != jobs.StatusSkipped {
			t.Errorf("%s: %s %s", en.Source, en.Status, en.Error)
		}
	}
	if len(entries) != total || len(seen) != total {
		t.Fatalf("%d manifest entries for %d sources, want %d each", len(entries), len(seen), total)
	}

	// More than the server allows gets the server's bound.
	body = e.submitBody()
	body["max_queued"] = 500
	body["out"] = filepath.Join(e.root, "out2")
	if code := e.do("POST", "/v1/batches", tokenA, body, nil, &r); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	if b, err = e.tracker.Get(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	if b.MaxQueued != 50 {
		t.Fatalf("batch bound %d for a body asking 500, want the server's 50", b.MaxQueued)
	}
}

// queued counts batch's item tasks waiting in the default queue and, with
// active, those running too.
func (e *env) queued(batch string, active bool) int {
	e.t.Helper()
	n := 0
	type lister func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)
	lists := []lister{e.insp.ListPendingTasks, e.insp.ListScheduledTasks, e.insp.ListRetryTasks}
	if active {
		lists = append(lists, e.insp.ListActiveTasks)
	}
	for _, list := range lists {
		tasks, err := list(jobs.QueueDefault, asynq.PageSize(1000))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ti := range tasks {
			if id, err := itemtask.BatchOf(ti.Payload); ti.Type == jobs.TypeItem && err == nil && id == batch {
				n++
			}
		}
	}
	return n
}

// drain runs a worker (with the feed task) until batch is finalized and
// returns the most of its items seen waiting at once.
func (e *env) drain(feeds *feed.Store, batch string, bound int) int {
	e.t.Helper()
	opt, err := asynq.ParseRedisURI(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	open := func(ctx context.Context, loc string) (storage.Store, error) {
		return backends.Open(ctx, loc, backends.Config{})
	}
	const concurrency = 3
	w, err := worker.New(worker.Config{Redis: opt, Tracker: e.tracker, Open: open,
		Model: offline.New(offline.Options{}), Concurrency: concurrency, ShutdownTimeout: 5 * time.Second, Feeds: feeds,
		Handlers: map[string]asynq.Handler{feed.TypeFeed: asynq.HandlerFunc(e.api.cfg.Ingester.TopUp)}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	defer func() { stop(); wg.Wait() }()
	most := 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := e.tracker.Counts(context.Background(), batch)
		if err != nil {
			e.t.Fatal(err)
		}
		if c.Finalized {
			return most
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("batch not finalized: %+v", c)
		}
		most = max(most, e.queued(batch, false))
		// A task whose item is recorded is active until its handler
		// returns: at most a worker slot over the bound.
		if q := e.queued(batch, true); q > bound+concurrency {
			e.t.Fatalf("%d items queued or running, over the bound of %d + %d worker slots", q, bound, concurrency)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
