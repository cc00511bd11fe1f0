package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func item(batch, key string) jobs.ItemPayload {
	return jobs.ItemPayload{Batch: batch, Item: jobs.ItemID("/src", key), Source: jobs.Ref{Location: "/src", Key: key, ETag: "e1", Size: 10},
		Type: jobs.FileTXT, Kind: jobs.KindDocument, Task: jobs.TaskSummarize, Out: "/out", ResultBase: key}
}

func TestPayloadRoundTripAndValidation(t *testing.T) {
	p := item("b1", "a/contract.txt")
	p.Source.Pages = &jobs.PageRange{First: 3, Last: 9}
	task, err := jobs.NewItemTask(p, jobs.QueueDefault, 3)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != jobs.TypeItem {
		t.Fatalf("type %q", task.Type())
	}
	got, err := jobs.DecodeItem(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.V != jobs.PayloadVersion || got.Source.Pages.Last != 9 || got.Source.Key != "a/contract.txt" {
		t.Fatalf("round trip: %+v", got)
	}
	bad := []struct {
		name    string
		payload string
	}{
		{"not json", `{`},
		{"future version", `{"v":99,"batch":"b","item":"i","source":{"location":"/s","key":"k"},"task":"caption","out":"/o","result_base":"k"}`},
		{"no batch", `{"v":1,"item":"i","source":{"location":"/s","key":"k"},"task":"caption","out":"/o","result_base":"k"}`},
		{"unknown task", `{"v":1,"batch":"b","item":"i","source":{"location":"/s","key":"k"},"task":"auto","out":"/o","result_base":"k"}`},
		{"bad pages", `{"v":1,"batch":"b","item":"i","source":{"location":"/s","key":"k","pages":{"first":5,"last":2}},"task":"summarize","out":"/o","result_base":"k"}`},
	}
	for _, c := range bad {
		if _, err := jobs.DecodeItem([]byte(c.payload)); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("%s: got %v, want ErrBadPayload", c.name, err)
		}
	}
}

func TestDeterministicIDsAndKeys(t *testing.T) {
	if jobs.ItemID("s3://b/p", "k") != jobs.ItemID("s3://b/p", "k") {
		t.Fatal("item ID not deterministic")
	}
	if jobs.ItemID("s3://b/p", "k") == jobs.ItemID("s3://b/q", "k") {
		t.Fatal("different locations share an item ID")
	}
	if jobs.ItemID("s3://b/p", "x/k") != jobs.ItemID("s3://b/p/x/", "k") {
		t.Fatal("one object reached through overlapping sources has two IDs")
	}
	if got := jobs.ResultKey(jobs.ResultBase(0, 1, "/data/in", "a/b.pdf"), jobs.SuffixSummaryJSON); got != "a/b.pdf.summary.json" {
		t.Fatalf("result key %q", got)
	}
	if got := jobs.ResultBase(1, 2, "s3://bucket/catalog/", "x.jpg"); got != "2-catalog/x.jpg" {
		t.Fatalf("multi-source result base %q", got)
	}
}

func TestEnqueueSameItemTwiceIsNoOp(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBJobs)
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	p := item("b1", "x.txt")
	for i := range 2 {
		task, err := jobs.NewItemTask(p, jobs.QueueDefault, 3)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.Enqueue(task)
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 && !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("second enqueue: %v, want ErrTaskIDConflict", err)
		}
	}
	q, err := insp.GetQueueInfo(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 1 {
		t.Fatalf("pending %d, want 1", q.Pending)
	}
}

func TestTrackerRecordsEachItemOnceAndCompletes(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "b2", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Task: jobs.TaskAuto, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := tr.Create(ctx, b); err == nil {
		t.Fatal("second Create of the same batch succeeded")
	}
	// Items end before the batch is sealed: never complete until sealed.
	const n = 50
	var wg sync.WaitGroup
	completes := make(chan bool, 3*n)
	for i := range n {
		for range 3 { // duplicate deliveries race each other
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := jobs.StatusDone
				if i%10 == 0 {
					st = jobs.StatusFailed
				}
				_, complete, err := tr.Record(ctx, "b2", jobs.Entry{Item: fmt.Sprint(i), Source: fmt.Sprintf("/src/%03d", i), Status: st, InputTokens: 10, OutputTokens: 1})
				if err != nil {
					t.Error(err)
				}
				completes <- complete
			}()
		}
	}
	wg.Wait()
	close(completes)
	for c := range completes {
		if c {
			t.Fatal("complete before the batch was sealed")
		}
	}
	complete, err := tr.Seal(ctx, "b2", n+1)
	if err != nil || complete {
		t.Fatalf("seal with one item outstanding: complete=%v err=%v", complete, err)
	}
	rec, complete, err := tr.Record(ctx, "b2", jobs.Entry{Item: "last", Source: "/src/zzz", Status: jobs.StatusSkipped, Error: "empty file"})
	if err != nil || !rec || !complete {
		t.Fatalf("last item: recorded=%v complete=%v err=%v", rec, complete, err)
	}
	c, err := tr.Counts(ctx, "b2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Done != 45 || c.Failed != 5 || c.Skipped != 1 || c.Total != n+1 || !c.Complete() || c.InputTokens != 500 {
		t.Fatalf("counts %+v", c)
	}
	es, err := tr.Entries(ctx, "b2")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != n+1 {
		t.Fatalf("%d entries, want %d", len(es), n+1)
	}
	for i := 1; i < len(es); i++ {
		if es[i-1].Source >= es[i].Source {
			t.Fatalf("entries not sorted/unique at %d: %s, %s", i, es[i-1].Source, es[i].Source)
		}
	}
	// A duplicate record after completion changes nothing but still says complete.
	rec, complete, err = tr.Record(ctx, "b2", jobs.Entry{Item: "3", Source: "/src/003", Status: jobs.StatusFailed})
	if err != nil || rec || !complete {
		t.Fatalf("duplicate: recorded=%v complete=%v err=%v", rec, complete, err)
	}
	if first, err := tr.SetFatal(ctx, "b2", "first"); err != nil || !first {
		t.Fatalf("first SetFatal: %v %v", first, err)
	}
	if first, _ := tr.SetFatal(ctx, "b2", "second"); first {
		t.Fatal("second SetFatal says it was first")
	}
	if msg, _ := tr.Fatal(ctx, "b2"); msg != "first" {
		t.Fatalf("fatal %q", msg)
	}
	if _, err := tr.Counts(ctx, "nope"); !errors.Is(err, jobs.ErrNoBatch) {
		t.Fatalf("unknown batch: %v", err)
	}
}

func TestSealEmptyBatchIsComplete(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{ID: "empty", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	complete, err := tr.Seal(ctx, "empty", 0)
	if err != nil || !complete {
		t.Fatalf("empty batch: complete=%v err=%v", complete, err)
	}
}

func FuzzDecodeItem(f *testing.F) {
	f.Add([]byte(`{"v":1,"batch":"b","item":"i","source":{"location":"/s","key":"k"},"task":"caption","out":"/o","result_base":"k"}`))
	f.Add([]byte(`{"v":1,"source":{"pages":{"first":0,"last":-1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := jobs.DecodeItem(b)
		if err == nil && (p.Batch == "" || p.Item == "" || p.Source.Key == "") {
			t.Fatalf("accepted an incomplete payload: %+v", p)
		}
	})
}

func TestListTenantSeesOnlyItsBatches(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	t0 := time.Now()
	for i, b := range []jobs.Batch{{ID: "a1", Spec: jobs.Spec{Tenant: "acme"}}, {ID: "b1", Spec: jobs.Spec{Tenant: "beta"}}, {ID: "a2", Spec: jobs.Spec{Tenant: "acme"}}, {ID: "n1"}} {
		b.Created = t0.Add(time.Duration(i) * time.Second)
		if err := tr.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := tr.ListTenant(ctx, "acme", 0)
	if err != nil || len(ids) != 2 || ids[0] != "a2" || ids[1] != "a1" {
		t.Fatalf("acme's batches %v, %v", ids, err)
	}
	if ids, _ := tr.ListTenant(ctx, "acme", 1); len(ids) != 1 || ids[0] != "a2" {
		t.Fatalf("limit 1: %v", ids)
	}
	if ids, _ := tr.List(ctx, 0); len(ids) != 4 {
		t.Fatalf("all batches %v", ids)
	}
}

func TestBatchesKeepTheirOwnManifest(t *testing.T) {
	b := jobs.Batch{ID: "20261125-101500-3f9a1c"}
	if b.ManifestPath() != "batches/20261125-101500-3f9a1c/manifest.jsonl" || b.ReportPath() != "batches/20261125-101500-3f9a1c/report.md" {
		t.Errorf("batch: %s, %s", b.ManifestPath(), b.ReportPath())
	}
	w := jobs.Batch{ID: "inbox-20261125", Watch: "inbox"}
	if w.ManifestPath() != "batches/inbox-20261125/manifest.jsonl" || w.ReportPath() != "batches/inbox-20261125/report.md" {
		t.Errorf("watch batch: %s, %s", w.ManifestPath(), w.ReportPath())
	}
}

func TestUsesBatchAPI(t *testing.T) {
	for _, c := range []struct {
		mode, queue string
		want        bool
	}{
		{"", jobs.QueueNightly, false}, {jobs.ModelOnline, jobs.QueueNightly, false},
		{jobs.ModelBatch, jobs.QueueDefault, true}, {jobs.ModelAuto, jobs.QueueNightly, true}, {jobs.ModelAuto, jobs.QueueDefault, false},
	} {
		if got := jobs.UsesBatchAPI(jobs.Options{ModelMode: c.mode}, c.queue); got != c.want {
			t.Errorf("%q on %s: %v, want %v", c.mode, c.queue, got, c.want)
		}
	}
	if jobs.ValidModelMode("later") || !jobs.ValidModelMode("") {
		t.Error("ValidModelMode")
	}
}

func TestCountsState(t *testing.T) {
	for want, c := range map[string]jobs.Counts{
		"listing":    {Total: 0, Done: 3},
		"running":    {Sealed: true, Total: 5, Done: 3},
		"finalizing": {Sealed: true, Total: 5, Done: 4, Failed: 1},
		"finished":   {Sealed: true, Total: 5, Done: 5, Finalized: true},
		"stopped":    {Sealed: true, Total: 5, Done: 1, Fatal: "bad key"},
	} {
		if got := c.State(); got != want {
			t.Errorf("%+v: %s, want %s", c, got, want)
		}
	}
}

// Two collect windows within one second are two tasks: a request left in
// the second must not be dropped as a duplicate of a collector that ran.
func TestCollectTaskIDsPerWindow(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	a, err := batchtask.NewCollectTask("g", base, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	b, err := batchtask.NewCollectTask("g", base.Add(300*time.Millisecond), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := jobstest.Redis(t, jobstest.DBJobs)
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	if _, err := client.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(b); err != nil {
		t.Fatalf("the second window's collector: %v", err)
	}
}

// A batch's cost is kept by currency: one currency is named, two (a
// fallback provider priced in another) are shown side by side, never
// added up as one.
func TestCountsKeepCostByCurrency(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "b-cur", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Task: jobs.TaskAuto, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	record := func(item string, cost float64, cur string) {
		t.Helper()
		if _, _, err := tr.Record(ctx, b.ID, jobs.Entry{Item: item, Source: "/src/" + item, Status: jobs.StatusDone, Cost: cost, Currency: cur}); err != nil {
			t.Fatal(err)
		}
	}
	record("a", 0.25, "USD")
	record("b", 0.5, "USD")
	c, err := tr.Counts(ctx, b.ID)
	if err != nil || c.Currency != "USD" || c.CostText() != "0.7500 USD" {
		t.Fatalf("one currency: %+v %q (%v)", c, c.CostText(), err)
	}
	record("c", 9, "RUB")
	if c, err = tr.Counts(ctx, b.ID); err != nil || c.Currency != "" || c.CostText() != "9.0000 RUB + 0.7500 USD" {
		t.Fatalf("two currencies: %+v %q (%v)", c, c.CostText(), err)
	}
}
