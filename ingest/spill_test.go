package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// countingModel is the offline model that counts its requests and refuses,
// for good, those whose text holds "FAILME".
type countingModel struct {
	llm.Client
	n atomic.Int64
}

func (m *countingModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	m.n.Add(1)
	for _, p := range req.Parts {
		if strings.Contains(p.Text, "FAILME") {
			return llm.Response{}, &llm.Error{Kind: llm.Permanent, Provider: "test", Status: 400, Message: "refused"}
		}
	}
	return m.Client.Complete(ctx, req)
}

// A bounded batch of a few hundred items (done, skipped by ingest, failed
// by the model) run by workers that spill every 20 entries ends with its
// items hash holding at most 3 pages' worth of fields whatever the batch's
// size, and its manifest holding every item exactly once with the counts
// right. A duplicate delivery of a spilled item is not sent to the model
// again, and `retry` finds every failed item of the spilled batch.
func TestBoundedBatchSpillsFinishedRecords(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	const n, size = 240, 20
	skipped, failed := 0, 0
	for i := range n {
		body := fmt.Sprintf("Contract %d between A and B. It runs for %d years.", i, i%7+1)
		switch {
		case i%15 == 0:
			body = "" // skipped by ingest
			skipped++
		case i%20 == 7:
			body = "FAILME " + body // refused by the model
			failed++
		}
		write(t, src, fmt.Sprintf("docs/%03d.txt", i), []byte(body))
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tr := jobs.NewTracker(rdb, "")
	feeds := feed.New(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr, Feeds: feeds}
	model := &countingModel{Client: offline.New(offline.Options{})}
	w, err := worker.New(worker.Config{Redis: jobstest.ConnOpt(t, url), Tracker: tr, Open: open, Model: model,
		Concurrency: 3, ShutdownTimeout: 5 * time.Second, Feeds: feeds, SpillPage: size,
		Handlers: map[string]asynq.Handler{feed.TypeFeed: asynq.HandlerFunc(in.TopUp)}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(wctx) }()
	defer func() { stop(); wg.Wait() }()

	res, err := in.Run(ctx, ingest.Options{PageSize: size, Spec: jobs.Spec{Sources: []string{src}, Out: out, MaxQueued: 10}})
	if err != nil {
		t.Fatal(err)
	}
	items := jobs.BatchItemsKey("", res.BatchID)
	most := waitFinalized(t, tr, res.BatchID, func() int64 { return rdb.HLen(ctx, items).Val() })
	if most > 3*size+3 { // 2×size, a page's worth recorded while one spills, one a worker slot
		t.Errorf("the items hash reached %d fields while the batch ran, want about 3×%d at most", most, size)
	}
	if hl := rdb.HLen(ctx, items).Val(); hl > 3*size {
		t.Errorf("the items hash holds %d fields at the end, want at most 3×%d", hl, size)
	}
	if pages, _ := rdb.HGet(ctx, jobs.BatchKey("", res.BatchID), spill.PagesField).Int(); pages < (n-3*size)/size {
		t.Errorf("%d pages spilled for %d items, want at least %d", pages, n, (n-3*size)/size)
	}
	c, err := tr.Counts(ctx, res.BatchID)
	if err != nil || c.Total != n || c.Skipped != skipped || c.Failed != failed || c.Done != n-skipped-failed {
		t.Fatalf("counts %+v, %v; want %d: %d skipped, %d failed", c, err, n, skipped, failed)
	}
	manifest := readManifest(t, tr, res.BatchID)
	if len(manifest) != n {
		t.Fatalf("manifest holds %d sources, want %d", len(manifest), n)
	}
	for src, es := range manifest {
		if len(es) != 1 {
			t.Errorf("%s is %d times in the manifest", src, len(es))
		}
	}

	// A duplicate delivery of a spilled, done item: ignored, no model call.
	var dup jobs.Entry
	for _, es := range manifest {
		if e := es[0]; e.Status == jobs.StatusDone && e.Seq > 0 && !rdb.HExists(ctx, items, e.Item).Val() {
			dup = e
			break
		}
	}
	if dup.Item == "" {
		t.Fatal("no done item was spilled")
	}
	b, err := tr.Get(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	p := jobs.ItemPayload{Batch: b.ID, Item: dup.Item, Source: jobs.Ref{Location: src, Key: dup.Key, ETag: dup.ETag, Size: dup.Size},
		Type: dup.Type, Kind: dup.Kind, Task: dup.Task, Out: b.Out, ResultBase: dup.ResultBase, Options: b.Options, Seq: dup.Seq}
	task, err := jobs.NewItemTask(p, jobs.QueueDefault, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := model.n.Load()
	if _, err := client.Enqueue(task, asynq.TaskID("dup-"+dup.Item), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		ti, err := insp.GetTaskInfo(jobs.QueueDefault, "dup-"+dup.Item)
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			t.Fatal(err)
		}
		if err == nil && ti.State == asynq.TaskStateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the duplicate task did not complete: %+v", ti)
		}
	}
	if got := model.n.Load(); got != calls {
		t.Errorf("a duplicate delivery of a spilled item made %d model calls, want none", got-calls)
	}
	if c2, _ := tr.Counts(ctx, res.BatchID); c2.Ended() != c.Ended() || c2.Done != c.Done {
		t.Errorf("counts after a duplicate %+v, were %+v", c2, c)
	}

	// retry reads the spilled batch: every failed item, once.
	rr, err := in.Retry(ctx, res.BatchID, ingest.RetryOptions{})
	if err != nil || rr.Total != failed {
		t.Fatalf("retry = %+v, %v; want its %d failed items", rr, err, failed)
	}
	waitFinalized(t, tr, rr.BatchID, func() int64 { return 0 })
	if c, err := tr.Counts(ctx, rr.BatchID); err != nil || c.Failed != failed || c.Total != failed {
		t.Fatalf("retry batch counts %+v, %v; want %d failed again", c, err, failed)
	}
}

// waitFinalized waits for batch to be finalized and returns the most that
// sample gave while it waited.
func waitFinalized(t *testing.T, tr *jobs.Tracker, batch string, sample func() int64) int64 {
	t.Helper()
	var most int64
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		most = max(most, sample())
		c, err := tr.Counts(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		if c.Finalized {
			return most
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s not finalized: %+v", batch, c)
		}
	}
}

// readManifest reads a finalized batch's manifest.jsonl: its entries by source.
func readManifest(t *testing.T, tr *jobs.Tracker, batch string) map[string][]jobs.Entry {
	t.Helper()
	ctx := context.Background()
	b, err := tr.Get(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	st, err := open(ctx, b.Out)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, b.ManifestPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string][]jobs.Entry{}
	sc := bufio.NewScanner(rc)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e jobs.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out[e.Source] = append(out[e.Source], e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
