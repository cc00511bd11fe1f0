package jobs_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/workarea"
)

func TestMapAndReducePayloadsRoundTripAndValidate(t *testing.T) {
	it := item("b1", "a/long.pdf")
	it.Fingerprint = "fp"
	mp := chunktask.MapPayload{Item: it, Index: 3, Count: 12, Pages: &jobs.PageRange{First: 41, Last: 60},
		Chunk: workarea.ChunkKey("b1", it.Item, 3, "pdf"), DocPages: 240, StartedMS: 1234}
	task, err := chunktask.NewMapTask(mp, jobs.QueueNightly, 4)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != chunktask.TypeMap {
		t.Fatalf("type %q", task.Type())
	}
	got, err := chunktask.DecodeMap(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.V != jobs.PayloadVersion || got.Item.V != jobs.PayloadVersion || got.Index != 3 || got.Count != 12 ||
		*got.Pages != (jobs.PageRange{First: 41, Last: 60}) || got.Chunk != mp.Chunk || got.Item.Fingerprint != "fp" ||
		got.DocPages != 240 || got.StartedMS != 1234 || got.Item.Source != it.Source {
		t.Fatalf("map round trip: %+v", got)
	}
	if l := got.ChunkLabel(); l != "chunk 3 of 12 (pages 41–60)" {
		t.Errorf("label %q", l)
	}
	if l := (chunktask.MapPayload{Index: 2, Count: 5}).ChunkLabel(); l != "chunk 2 of 5" {
		t.Errorf("label without pages %q", l)
	}

	rt, err := chunktask.NewReduceTask(chunktask.ReducePayload{Item: it, Count: 12, DocPages: 240}, jobs.QueueDefault, 3)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := chunktask.DecodeReduce(rt.Payload())
	if err != nil || rt.Type() != chunktask.TypeReduce || rp.Count != 12 || rp.DocPages != 240 || rp.Item.Item != it.Item {
		t.Fatalf("reduce round trip: %+v, %v", rp, err)
	}

	caption := item("b1", "x.jpg")
	caption.Task = jobs.TaskCaption
	bad := []chunktask.MapPayload{
		{Item: it, Index: 0, Count: 2, Chunk: "k"},
		{Item: it, Index: 3, Count: 2, Chunk: "k"},
		{Item: it, Index: 1, Count: 2},                                                            // neither object nor pages
		{Item: it, Index: 1, Count: 2, Pages: &jobs.PageRange{First: 5, Last: 2}},                 // bad range
		{Item: caption, Index: 1, Count: 1, Chunk: "k"},                                           // not a document
		{Item: jobs.ItemPayload{Batch: "b"}, Index: 1, Count: 1, Chunk: "k"},                      // bad item
		{Item: it, Index: 1, Count: 1, Pages: &jobs.PageRange{First: 0, Last: 2}},                 // page 0
		{Item: it, Index: 2, Count: 1, Pages: &jobs.PageRange{First: 1, Last: 2}},                 // index past count
		{Item: it, Index: -1, Count: -1, Pages: &jobs.PageRange{First: 1, Last: 2}},               // negative
		{Item: it, Index: 1, Count: 0, Chunk: "k", Pages: &jobs.PageRange{First: 1, Last: 1}},     // no chunks
		{Item: it, Index: 1, Count: 1, Chunk: "", Pages: nil, DocPages: 3},                        // nothing to read
		{Item: it, Index: 1, Count: 1, Chunk: "", Pages: &jobs.PageRange{First: 2}},               // last < first
		{Item: jobs.ItemPayload{}, Index: 1, Count: 1, Pages: &jobs.PageRange{First: 1, Last: 1}}, // empty item
	}
	for i, p := range bad {
		if _, err := chunktask.NewMapTask(p, jobs.QueueDefault, 1); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("bad map payload %d: got %v, want ErrBadPayload", i, err)
		}
	}
	if _, err := chunktask.NewReduceTask(chunktask.ReducePayload{Item: it}, jobs.QueueDefault, 1); !errors.Is(err, jobs.ErrBadPayload) {
		t.Errorf("reduce of 0 chunks: %v", err)
	}
	for _, s := range []string{`{`, `{"v":2,"item":{}}`, `{"v":1,"item":{"v":1,"batch":"b"},"index":1,"count":1,"chunk":"k"}`} {
		if _, err := chunktask.DecodeMap([]byte(s)); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("DecodeMap(%s): %v", s, err)
		}
		if _, err := chunktask.DecodeReduce([]byte(s)); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("DecodeReduce(%s): %v", s, err)
		}
	}
}

func TestChunkIDsAndKeysAreDeterministic(t *testing.T) {
	if a, b := chunktask.MapTaskID("b", "i", 3), chunktask.MapTaskID("b", "i", 3); a != b || a != "map:b:i:3" {
		t.Errorf("map task IDs %q %q", a, b)
	}
	if chunktask.MapTaskID("b", "i", 3) == chunktask.MapTaskID("b", "i", 4) || chunktask.MapTaskID("b", "i", 1) == chunktask.MapTaskID("b", "j", 1) {
		t.Error("map task IDs collide")
	}
	if id := chunktask.ReduceTaskID("b", "i"); id != "reduce:b:i" {
		t.Errorf("reduce task ID %q", id)
	}
	if k := workarea.ChunkKey("b", "i", 7, "pdf"); k != ".llamapipe/work/b/i/chunk-0007.pdf" {
		t.Errorf("chunk key %q", k)
	}
	if k := workarea.MapResultKey("b", "i", 12); k != ".llamapipe/work/b/i/map-0012.json" || !strings.HasPrefix(k, workarea.WorkPrefix("b", "i")) {
		t.Errorf("map result key %q", k)
	}
}

// TestMarkMappedCountsDistinctChunks: concurrent and duplicate marks of the
// same chunks are counted once each; exactly one caller sees the full count
// per distinct last chunk, and ClearMapped forgets them.
func TestMarkMappedCountsDistinctChunks(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	const chunks = 20
	var mu sync.Mutex
	full := 0
	var wg sync.WaitGroup
	for dup := range 3 { // every chunk delivered three times
		for i := 1; i <= chunks; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := tr.MarkMapped(ctx, "b1", "item", i)
				if err != nil {
					t.Error(err)
					return
				}
				if n < 1 || n > chunks {
					t.Errorf("dup %d chunk %d: count %d", dup, i, n)
				}
				if n == chunks {
					mu.Lock()
					full++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if n, err := tr.Mapped(ctx, "b1", "item"); err != nil || n != chunks {
		t.Fatalf("mapped %d, %v; want %d", n, err, chunks)
	}
	if full < 1 {
		t.Error("no caller saw every chunk mapped")
	}
	if n, _ := tr.Mapped(ctx, "b1", "other"); n != 0 {
		t.Errorf("another item has %d mapped chunks", n)
	}
	if ttl := rdb.PTTL(ctx, "llamapipe:batch:{b1}:mapped:item").Val(); ttl <= 0 || ttl > jobs.MappedTTL {
		t.Errorf("TTL %s, want at most %s", ttl, jobs.MappedTTL)
	}
	if err := tr.ClearMapped(ctx, "b1", "item"); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.Mapped(ctx, "b1", "item"); n != 0 {
		t.Errorf("%d mapped after clear", n)
	}
}

// TestReduceEnqueuedOnceUnderDuplicates: the deterministic reduce task ID
// turns a second enqueue into ErrTaskIDConflict.
func TestReduceEnqueuedOnceUnderDuplicates(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBJobs)
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	it := item("b2", "long.txt")
	for i := range 2 {
		task, err := chunktask.NewReduceTask(chunktask.ReducePayload{Item: it, Count: 3}, jobs.QueueDefault, 3)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.Enqueue(task)
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 && !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("second reduce enqueue: %v, want ErrTaskIDConflict", err)
		}
	}
}

// TestProgressIsNotSetForARecordedItem: a late map task's progress does not
// come back once the item's entry is recorded.
func TestProgressIsNotSetForARecordedItem(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{ID: "b3", Created: time.Now(), Spec: jobs.Spec{Queue: jobs.QueueDefault}}); err != nil {
		t.Fatal(err)
	}
	p := jobs.Progress{Item: "i1", Source: "/src/long.pdf", Stage: "map", Done: 3, Total: 9, Updated: time.Now()}
	if err := tr.SetProgressUnlessRecorded(ctx, "b3", 0, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Progress(ctx, "b3"); len(got) != 1 || got[0].Done != 3 || got[0].Stage != "map" {
		t.Fatalf("progress %+v", got)
	}
	if _, _, err := tr.Record(ctx, "b3", jobs.Entry{Item: "i1", Source: p.Source, Status: jobs.StatusDone}); err != nil {
		t.Fatal(err)
	}
	p.Done = 4
	if err := tr.SetProgressUnlessRecorded(ctx, "b3", 0, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Progress(ctx, "b3"); len(got) != 0 {
		t.Errorf("progress of a recorded item: %+v", got)
	}
}

// TestPayloadsCarryTraceparentAndOldOnesDecode: map, reduce and finalize
// payloads carry a traceparent (a reference, tens of bytes) when given one,
// and payloads of builds before the field decode as before, without one.
func TestPayloadsCarryTraceparentAndOldOnesDecode(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	it := item("b1", "a/long.pdf")
	mt, err := chunktask.NewMapTask(chunktask.MapPayload{Item: it, Index: 1, Count: 2, Chunk: "k", Trace: tp}, jobs.QueueDefault, 3)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := chunktask.NewReduceTask(chunktask.ReducePayload{Item: it, Count: 2, Trace: tp}, jobs.QueueDefault, 3)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := jobs.NewLinkedFinalizeTask("b1", jobs.QueueDefault, tp)
	if err != nil {
		t.Fatal(err)
	}
	mp, merr := chunktask.DecodeMap(mt.Payload())
	rp, rerr := chunktask.DecodeReduce(rt.Payload())
	fp, ferr := jobs.DecodeFinalize(ft.Payload())
	if merr != nil || rerr != nil || ferr != nil || mp.Trace != tp || rp.Trace != tp || fp.Trace != tp || fp.Batch != "b1" {
		t.Fatalf("trace round trip: %q %q %q (%v %v %v)", mp.Trace, rp.Trace, fp.Trace, merr, rerr, ferr)
	}
	for _, old := range []string{
		`{"v":1,"item":{"v":1,"batch":"b1","item":"i1","source":{"location":"file:///s","key":"a.pdf"},"type":"pdf","kind":"document","task":"summarize","out":"file:///o","result_base":"a.pdf"},"index":1,"count":2,"chunk":"k"}`,
	} {
		if mp, err := chunktask.DecodeMap([]byte(old)); err != nil || mp.Trace != "" || mp.Index != 1 {
			t.Errorf("old map payload: %+v %v", mp, err)
		}
	}
	if rp, err := chunktask.DecodeReduce([]byte(`{"v":1,"item":{"v":1,"batch":"b1","item":"i1","source":{"location":"file:///s","key":"a.pdf"},"type":"pdf","kind":"document","task":"summarize","out":"file:///o","result_base":"a.pdf"},"count":2}`)); err != nil || rp.Trace != "" {
		t.Errorf("old reduce payload: %+v %v", rp, err)
	}
	if fp, err := jobs.DecodeFinalize([]byte(`{"v":1,"batch":"b1"}`)); err != nil || fp.Trace != "" || fp.Batch != "b1" {
		t.Errorf("old finalize payload: %+v %v", fp, err)
	}
}
