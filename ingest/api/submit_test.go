package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	"github.com/llamapipe/llamapipe/jobs/itemtask"
)

// gatedQueue enqueues through q; after `after` tasks it closes started and
// then slows every enqueue down, so that a listing is surely still running
// when the test acts on started.
type gatedQueue struct {
	q       ingest.Enqueuer
	after   int64
	n       atomic.Int64
	once    sync.Once
	started chan struct{}
}

func (g *gatedQueue) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if n := g.n.Add(1); n >= g.after {
		g.once.Do(func() { close(g.started) })
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.q.EnqueueContext(ctx, t, opts...)
}

// manyFiles writes n small text files under root/many and returns it.
func manyFiles(t *testing.T, root string, n int) string {
	t.Helper()
	dir := filepath.Join(root, "many")
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%40))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("Contract %d: the tenant pays rent monthly.", i)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("c%05d.txt", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gate puts a gatedQueue in front of the env's ingester's queue.
func (e *env) gate(after int64) *gatedQueue {
	g := &gatedQueue{q: e.api.cfg.Ingester.Queue, after: after, started: make(chan struct{})}
	e.api.cfg.Ingester.Queue = g
	return g
}

// work plays the workers: every queued item task of batch is recorded as
// done. It returns how many it recorded and whether the batch completed.
func (e *env) work(batch string) (n int, complete bool) {
	e.t.Helper()
	ctx := context.Background()
	for page := 1; ; page++ {
		tasks, err := e.insp.ListPendingTasks("default", asynq.PageSize(500), asynq.Page(page))
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ti := range tasks {
			if ti.Type != jobs.TypeItem {
				continue
			}
			p, err := itemtask.Decode(ti.Payload, func(id string) (jobs.Batch, error) { return e.api.cfg.Tracker.Get(ctx, id) })
			if err != nil || p.Batch != batch {
				continue
			}
			rec, c, err := e.tracker.Record(ctx, batch, jobs.Entry{Item: p.Item, Source: p.Source.URL(), Key: p.Source.Key,
				Kind: p.Kind, Type: p.Type, Task: p.Task, Status: jobs.StatusDone, ResultBase: p.ResultBase})
			if err != nil {
				e.t.Fatal(err)
			}
			if rec {
				n++
			}
			complete = complete || c
		}
		if len(tasks) < 500 {
			return n, complete
		}
	}
}

// finalizeQueued reports whether batch's finalize task (the one that
// writes its manifest) is queued.
func (e *env) finalizeQueued(batch string) bool {
	_, err := e.insp.GetTaskInfo("default", jobs.FinalizeTaskID(batch))
	return err == nil
}

// A client that goes away in the middle of a submit's listing does not
// stop it: the batch is listed to the end and sealed with every item, the
// workers' last item enqueues its finalize, and the same Idempotency-Key
// answers with the same batch.
func TestSubmitFinishesWhenClientLeaves(t *testing.T) {
	e := newEnv(t)
	const files = 3000
	dir := manyFiles(t, e.root, files)
	g := e.gate(500)
	body := map[string]any{"sources": []string{dir}, "out": e.out, "task": "summarize"}
	hdr := map[string]string{"Idempotency-Key": "leaving-client"}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-g.started; cancel() }()
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/batches", strings.NewReader(`{"sources":["`+dir+`"],"out":"`+e.out+`","task":"summarize"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Idempotency-Key", hdr["Idempotency-Key"])
	if resp, err := e.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("submit answered %d before the client left: the listing was not gated", resp.StatusCode)
	} else if !errors.Is(err, context.Canceled) {
		t.Fatalf("submit: %v, want the client's cancellation", err)
	}
	if n := g.n.Load(); n >= files {
		t.Fatalf("the client left after %d of %d items were queued: not mid-listing", n, files)
	}

	// The retry waits for the first request's listing and gets its batch.
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, hdr, &r); code != http.StatusOK {
		t.Fatalf("retried submit: %d, want 200 with the first request's batch", code)
	}
	if r.ID == "" || r.Total != files || r.Enqueued != files {
		t.Fatalf("retried submit = %+v, want the first request's batch with %d items queued", r, files)
	}
	var again SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, hdr, &again); code != http.StatusOK || again.ID != r.ID {
		t.Fatalf("second retry: %d, %s; want 200 with %s", code, again.ID, r.ID)
	}
	ids, err := e.tracker.ListTenant(context.Background(), "acme", 0)
	if err != nil || len(ids) != 1 {
		t.Fatalf("tenant batches = %v, %v; want exactly one", ids, err)
	}
	c, err := e.tracker.Counts(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sealed || c.Total != files || c.CancelRequested || c.State() == "listing" {
		t.Fatalf("counts = %+v (state %s), want sealed with %d items, not cancelled", c, c.State(), files)
	}
	n, complete := e.work(r.ID)
	if n != files || !complete {
		t.Fatalf("workers recorded %d (complete %v), want %d and complete", n, complete, files)
	}
	// The worker that ends the last item enqueues the finalize (manifest
	// and webhook); here the test is the worker.
	if err := enqueueFinalize(e, r.ID); err != nil {
		t.Fatal(err)
	}
	if !e.finalizeQueued(r.ID) {
		t.Fatal("no finalize task queued for the completed batch")
	}
}

func enqueueFinalize(e *env, batch string) error {
	ft, err := jobs.NewFinalizeTask(batch, "default")
	if err != nil {
		return err
	}
	_, err = e.api.cfg.Ingester.Queue.EnqueueContext(context.Background(), ft)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		err = nil
	}
	return err
}

// A server that shuts down in the middle of a submit's listing ends the
// batch cancelled, its queued items removed, never stuck in listing; the
// Idempotency-Key is freed for a new submit.
func TestSubmitStoppedByShutdownEndsCancelled(t *testing.T) {
	shutdown, stop := context.WithCancel(context.Background())
	defer stop()
	e := newEnv(t, func(c *Config) { c.Shutdown = shutdown })
	const files = 3000
	dir := manyFiles(t, e.root, files)
	g := e.gate(500)
	go func() { <-g.started; stop() }()
	body := map[string]any{"sources": []string{dir}, "out": e.out, "task": "summarize"}
	var msg struct{ Error string }
	code := e.do("POST", "/v1/batches", tokenA, body, map[string]string{"Idempotency-Key": "shutdown"}, &msg)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("submit during shutdown: %d %q, want 503", code, msg.Error)
	}
	ids, err := e.tracker.ListTenant(context.Background(), "acme", 0)
	if err != nil || len(ids) != 1 {
		t.Fatalf("tenant batches = %v, %v; want one", ids, err)
	}
	id := ids[0]
	if !strings.Contains(msg.Error, id) {
		t.Errorf("503 answer %q does not name batch %s", msg.Error, id)
	}
	c, err := e.tracker.Counts(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sealed || !c.CancelRequested || c.State() == "listing" || c.Total >= files || c.Total < 400 {
		t.Fatalf("counts = %+v (state %s): want sealed and cancelled part-way", c, c.State())
	}
	if !c.Complete() || c.Cancelled != c.Total {
		t.Fatalf("counts = %+v: want every queued item removed and recorded cancelled", c)
	}
	if n, _ := e.work(id); n != 0 {
		t.Fatalf("%d items of the cancelled batch were still queued", n)
	}
	if !e.finalizeQueued(id) {
		t.Fatal("the cancelled batch's finalize was not queued")
	}
	// The key was freed: the same submit after the restart makes a batch.
	e.api.cfg.Shutdown = context.Background()
	e.api.cfg.Ingester.Queue = g.q
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, map[string]string{"Idempotency-Key": "shutdown"}, &r); code != http.StatusCreated || r.ID == id || r.Total != files {
		t.Fatalf("submit after restart: %d %+v, want 201 with a new batch of %d", code, r, files)
	}
}

// Items pages follow next_cursor through a large batch: every item once,
// each page at most per_page, with and without a status filter; page=
// still works.
func TestItemsCursorPaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := jobs.Batch{ID: "20261207-000000-cafe01", Created: time.Now(), Spec: jobs.Spec{Sources: []string{e.src}, Task: jobs.TaskAuto, Out: e.out, Queue: jobs.QueueDefault, Tenant: "acme"}}
	if err := e.tracker.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Every fifth item ends at listing, recorded in chunks of up to 30
	// (RecordListed, one field of the items hash each).
	const n = 700
	done := 0
	var listed []jobs.Entry
	for i := range n {
		st := jobs.StatusDone
		if i%5 == 1 {
			st = jobs.StatusSkipped
		}
		if i%7 == 0 {
			st = jobs.StatusFailed
		}
		en := jobs.Entry{Item: fmt.Sprintf("i%04d", i), Source: fmt.Sprintf("%s/f%04d.txt", e.src, i), Key: fmt.Sprintf("f%04d.txt", i), Status: st}
		if i%5 == 1 {
			listed = append(listed, en)
			continue
		}
		if st == jobs.StatusDone {
			done++
		}
		if _, _, err := e.tracker.Record(ctx, b.ID, en); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(listed); i += 30 {
		if _, err := e.tracker.RecordListed(ctx, b.ID, i, listed[i:min(i+30, len(listed))]); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Items      []jobs.Entry
		Total      int
		NextCursor string `json:"next_cursor"`
	}
	walk := func(status string, per int) map[string]int {
		seen := map[string]int{}
		cursor := ""
		for range 1000 {
			q := fmt.Sprintf("/v1/batches/%s/items?per_page=%d&status=%s&cursor=%s", b.ID, per, status, cursor)
			if cursor == "" {
				q = fmt.Sprintf("/v1/batches/%s/items?per_page=%d&status=%s", b.ID, per, status)
			}
			var p page
			if code := e.do("GET", q, tokenA, nil, nil, &p); code != http.StatusOK {
				t.Fatalf("%s: %d", q, code)
			}
			if len(p.Items) > per {
				t.Fatalf("%s: %d items, over per_page", q, len(p.Items))
			}
			for _, it := range p.Items {
				if status != "" && it.Status != status {
					t.Fatalf("%s: item %s is %s", q, it.Item, it.Status)
				}
				seen[it.Item]++
			}
			if p.NextCursor == "" {
				return seen
			}
			cursor = p.NextCursor
		}
		t.Fatal("paging does not end")
		return nil
	}
	for _, tc := range []struct {
		status string
		per    int
		want   int
	}{{"", 50, n}, {"", 33, n}, {jobs.StatusFailed, 20, n / 7}, {jobs.StatusSkipped, 7, len(listed) - 20}, {"", 1000, n}} {
		seen := walk(tc.status, tc.per)
		if len(seen) != tc.want {
			t.Errorf("status %q per %d: %d distinct items, want %d", tc.status, tc.per, len(seen), tc.want)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("status %q per %d: item %s came %d times", tc.status, tc.per, id, c)
			}
		}
	}
	var p page
	if code := e.do("GET", "/v1/batches/"+b.ID+"/items?page=3&per_page=100&status=done", tokenA, nil, nil, &p); code != http.StatusOK ||
		len(p.Items) != 100 || p.Total != done {
		t.Fatalf("page 3: %d, %d items, total %d", code, len(p.Items), p.Total)
	}
	if code := e.do("GET", "/v1/batches/"+b.ID+"/items?per_page=10", tokenA, nil, nil, &p); code != http.StatusOK || p.Total != n {
		t.Fatalf("items: %d, total %d; want %d", code, p.Total, n)
	}
	for _, bad := range []string{"cursor=x", "cursor=1.2", "cursor=0.0.0", "cursor=0.0.10&page=2"} {
		if code := e.do("GET", "/v1/batches/"+b.ID+"/items?"+bad, tokenA, nil, nil, nil); code != http.StatusBadRequest {
			t.Errorf("items?%s: %d, want 400", bad, code)
		}
	}
}
