package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// A listing chunk's entries are recorded in one write and counted once:
// recording the same chunk again (a resumed listing) changes nothing, and
// every reader sees each entry once.
func TestRecordListedCountsAChunkOnce(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "rl1", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	e := func(item, status string) jobs.Entry {
		return jobs.Entry{Item: item, Source: "/src/" + item, Status: status, Error: "unchanged", Results: []string{item + ".caption.txt"}}
	}
	chunk0 := []jobs.Entry{e("a", jobs.StatusSkipped), e("b", jobs.StatusSkipped), e("c", jobs.StatusFailed), e("b", jobs.StatusSkipped)}
	for i, want := range []int{3, 0} { // the second time: a resumed listing
		if n, err := tr.RecordListed(ctx, b.ID, 0, chunk0); err != nil || n != want {
			t.Fatalf("RecordListed #%d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	// The same chunk number with other entries (the listing changed before
	// the resume): only the new ones are recorded.
	if n, err := tr.RecordListed(ctx, b.ID, 0, []jobs.Entry{e("a", jobs.StatusSkipped), e("d", jobs.StatusSkipped)}); err != nil || n != 1 {
		t.Fatalf("changed chunk: %d, %v; want d recorded", n, err)
	}
	if n, err := tr.RecordListed(ctx, b.ID, 4, []jobs.Entry{e("e", jobs.StatusSkipped)}); err != nil || n != 1 {
		t.Fatalf("second chunk: %d, %v", n, err)
	}
	if _, _, err := tr.Record(ctx, b.ID, jobs.Entry{Item: "f", Source: "/src/f", Status: jobs.StatusDone}); err != nil {
		t.Fatal(err)
	}
	complete, err := tr.Seal(ctx, b.ID, 6)
	if err != nil || !complete {
		t.Fatalf("Seal = %v, %v; want complete", complete, err)
	}
	c, err := tr.Counts(ctx, b.ID)
	if err != nil || c.Skipped != 4 || c.Failed != 1 || c.Done != 1 {
		t.Fatalf("counts %+v, %v; want 4 skipped, 1 failed, 1 done", c, err)
	}
	want := map[string]string{"a": jobs.StatusSkipped, "b": jobs.StatusSkipped, "c": jobs.StatusFailed, "d": jobs.StatusSkipped, "e": jobs.StatusSkipped, "f": jobs.StatusDone}
	check := func(how string, es []jobs.Entry) {
		t.Helper()
		got := map[string]string{}
		for _, e := range es {
			if _, dup := got[e.Item]; dup {
				t.Errorf("%s: %s twice", how, e.Item)
			}
			got[e.Item] = e.Status
			if e.Source != "/src/"+e.Item {
				t.Errorf("%s: %s has source %q", how, e.Item, e.Source)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", how, got, want)
		}
	}
	all, err := tr.Entries(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("Entries", all)
	var each []jobs.Entry
	if err := tr.EachEntry(ctx, b.ID, func(e jobs.Entry) error { each = append(each, e); return nil }); err != nil {
		t.Fatal(err)
	}
	check("EachEntry", each)
	var paged []jobs.Entry
	for cursor := uint64(0); ; {
		page, next, err := tr.EntriesPage(ctx, b.ID, cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	check("EntriesPage", paged)
	if n, err := tr.EntryCount(ctx, b.ID); err != nil || n != 6 {
		t.Fatalf("EntryCount = %d, %v; want 6", n, err)
	}
	if got, ok, err := tr.Entry(ctx, b.ID, "c"); err != nil || !ok || got.Status != jobs.StatusFailed || len(got.Results) != 1 {
		t.Fatalf("Entry(c) = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := tr.Entry(ctx, b.ID, "zz"); err != nil || ok {
		t.Fatalf("Entry(zz) = %v, %v; want none", ok, err)
	}
	if _, err := tr.RecordListed(ctx, "gone", 0, []jobs.Entry{e("x", jobs.StatusSkipped)}); !errors.Is(err, jobs.ErrNoBatch) {
		t.Fatalf("unknown batch: %v, want ErrNoBatch", err)
	}
	if _, err := tr.RecordListed(ctx, b.ID, 9, []jobs.Entry{{Item: "g", Status: jobs.StatusDone, Cost: 1}}); err == nil {
		t.Fatal("RecordListed took a done entry with a cost")
	}
}

// A page of a batch whose entries are listing chunks holds about the
// entries asked for, not as many chunks: memory stays O(page).
func TestEntriesPageOfListingChunksIsBounded(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "rl2", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	const chunks, per = 8, 100
	for c := range chunks {
		var es []jobs.Entry
		for i := range per {
			item := fmt.Sprintf("c%di%03d", c, i)
			es = append(es, jobs.Entry{Item: item, Source: "/src/" + item, Status: jobs.StatusSkipped, Error: "unchanged"})
		}
		if _, err := tr.RecordListed(ctx, b.ID, c*per, es); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for cursor := uint64(0); ; {
		page, next, err := tr.EntriesPage(ctx, b.ID, cursor, per)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > chunks*per/2 {
			t.Fatalf("a page of %d entries for %d asked: the chunks were not paged", len(page), per)
		}
		for _, e := range page {
			seen[e.Item] = true
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(seen) != chunks*per {
		t.Fatalf("%d entries paged, want %d", len(seen), chunks*per)
	}
}
