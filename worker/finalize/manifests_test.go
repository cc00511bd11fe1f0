package finalize

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// dbFinalize is this package's test Redis database (see jobstest's list).
const dbFinalize = 11

// realEnv is a Finalizer on the test Redis writing into one local output.
type realEnv struct {
	t       *testing.T
	tracker *jobs.Tracker
	fin     *Finalizer
	out     storage.Store
	now     time.Time
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	_, rdb := jobstest.Redis(t, dbFinalize)
	out, err := localstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &realEnv{t: t, tracker: jobs.NewTracker(rdb, ""), out: out, now: created}
	e.fin, err = New(Config{Tracker: e.tracker, Enqueuer: &fakeEnqueuer{},
		Open: func(context.Context, string) (storage.Store, error) { return out, nil },
		Now:  func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// finalize runs batch b (entries of n items, the first failing) to its
// manifest.
func (e *realEnv) finalize(b jobs.Batch, n int) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.tracker.Create(ctx, b); err != nil {
		e.t.Fatal(err)
	}
	for i := range n {
		en := jobs.Entry{Item: fmt.Sprintf("%s-%04d", b.ID, i), Source: fmt.Sprintf("/src/%s/%04d.txt", b.ID, i), Kind: jobs.KindDocument, Status: jobs.StatusDone}
		if i == 0 {
			en.Status, en.Error = jobs.StatusFailed, "unreadable"
		}
		if _, _, err := e.tracker.Record(ctx, b.ID, en); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.tracker.Seal(ctx, b.ID, n); err != nil {
		e.t.Fatal(err)
	}
	task, err := jobs.NewFinalizeTask(b.ID, jobs.QueueDefault)
	if err != nil {
		e.t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	if err := e.fin.HandleFinalize(ctx, task); err != nil {
		e.t.Fatal(err)
	}
}

func (e *realEnv) read(key string) string {
	e.t.Helper()
	rc, err := e.out.Get(context.Background(), key, nil)
	if err != nil {
		e.t.Fatalf("%s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(data)
}

func (e *realEnv) manifest(key string) []jobs.Entry {
	e.t.Helper()
	var es []jobs.Entry
	for line := range strings.Lines(e.read(key)) {
		var en jobs.Entry
		if err := json.Unmarshal([]byte(line), &en); err != nil {
			e.t.Fatalf("%s: %v", key, err)
		}
		es = append(es, en)
	}
	return es
}

func TestTwoBatchesIntoOneOutputKeepBothManifests(t *testing.T) {
	e := newRealEnv(t)
	first := jobs.Batch{ID: "b-first", Created: created, Spec: jobs.Spec{Out: "file:///out", Queue: jobs.QueueDefault}}
	second := jobs.Batch{ID: "b-second", Created: created, Spec: jobs.Spec{Out: "file:///out", Queue: jobs.QueueDefault}}
	e.finalize(first, 3)
	e.finalize(second, 1200) // more than one HSCAN page
	if es := e.manifest("batches/b-first/manifest.jsonl"); len(es) != 3 || es[0].Item[:7] != "b-first" {
		t.Errorf("first batch's manifest: %d entries", len(es))
	}
	es := e.manifest("batches/b-second/manifest.jsonl")
	items := map[string]bool{}
	for _, en := range es {
		items[en.Item] = true
	}
	if len(es) != 1200 || len(items) != 1200 {
		t.Errorf("second batch's manifest: %d lines, %d items, want 1200", len(es), len(items))
	}
	if !strings.Contains(e.read("batches/b-first/report.md"), "# llamapipe batch b-first") {
		t.Error("first batch's report replaced")
	}
	// The root's are the latest finalized batch's.
	if e.read(jobs.ManifestKey) != e.read("batches/b-second/manifest.jsonl") {
		t.Error("root manifest.jsonl is not the latest batch's")
	}
	report := e.read(jobs.ReportKey)
	if report != e.read("batches/b-second/report.md") || !strings.Contains(report, "| 1200 | 1199 | 1 | 0 | 0 |") ||
		!strings.Contains(report, "### unreadable (1)") {
		t.Errorf("root report.md is not the latest batch's:\n%s", report)
	}
}

func TestRetryBatchKeepsTheOriginalsManifest(t *testing.T) {
	e := newRealEnv(t)
	orig := jobs.Batch{ID: "b-orig", Created: created, Spec: jobs.Spec{Out: "file:///out", Queue: jobs.QueueDefault}}
	e.finalize(orig, 4)
	before := e.read("batches/b-orig/manifest.jsonl")
	retry := jobs.Batch{ID: "b-retry", Created: created, Spec: jobs.Spec{Out: "file:///out", Queue: jobs.QueueDefault}, RetryOf: "b-orig"}
	e.finalize(retry, 1)
	if after := e.read("batches/b-orig/manifest.jsonl"); after != before {
		t.Error("the retry changed the original's manifest")
	}
	for _, en := range e.manifest("batches/b-retry/manifest.jsonl") {
		if en.RetryOf != "b-orig" {
			t.Errorf("retry entry %s: retry_of %q", en.Item, en.RetryOf)
		}
	}
	if report := e.read("batches/b-retry/report.md"); !strings.Contains(report, "retries the failed items of batch b-orig (its manifest: batches/b-orig/manifest.jsonl") {
		t.Errorf("retry report does not link the original:\n%s", report)
	}
	if e.read(jobs.ManifestKey) != e.read("batches/b-retry/manifest.jsonl") {
		t.Error("root manifest.jsonl is not the retry's")
	}
}

func TestReportTallyIsBounded(t *testing.T) {
	tl := newTally()
	for i := range 5000 {
		tl.add(jobs.Entry{Source: fmt.Sprintf("/src/%05d", 5000-i), Status: jobs.StatusFailed, Error: fmt.Sprintf("reason %d", i%(maxReasons+50))})
	}
	groups := tl.reasons[jobs.StatusFailed]
	if len(groups) != maxReasons+1 || groups[otherReasons] == nil {
		t.Fatalf("%d reason groups, want %d and %q", len(groups), maxReasons+1, otherReasons)
	}
	total := 0
	for _, g := range groups {
		total += g.n
		if len(g.sources) > maxListed {
			t.Errorf("%d sources kept for one reason", len(g.sources))
		}
	}
	if total != 5000 {
		t.Errorf("groups count %d items, want 5000", total)
	}
	// reason 0 is items 0, 250, 500, …: sources /src/05000, /src/04750, …
	if g := groups["reason 0"]; len(g.sources) != maxListed || !slices.IsSorted(g.sources) || g.sources[0] != "/src/00250" {
		t.Errorf("examples not the first by name: %v", g.sources)
	}
}
