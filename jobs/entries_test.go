package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// EntriesPage reads a batch a page at a time; EachEntry visits every
// entry; EntryCount counts them.
func TestEntriesPageByPage(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "paged", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Task: jobs.TaskAuto, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	const n = 1000 // over Redis' listpack size: a real hash table, scanned in steps
	for i := range n {
		e := jobs.Entry{Item: fmt.Sprintf("i%04d", i), Source: fmt.Sprintf("/src/f%04d", i), Status: jobs.StatusDone}
		if _, _, err := tr.Record(ctx, b.ID, e); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var cursor uint64
	pages := 0
	for {
		page, next, err := tr.EntriesPage(ctx, b.ID, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 300 {
			t.Fatalf("a page of %d entries for count 100", len(page))
		}
		for _, e := range page {
			seen[e.Item] = true
		}
		pages++
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(seen) != n || pages < 5 {
		t.Fatalf("%d pages gave %d distinct entries, want %d in several pages", pages, len(seen), n)
	}
	count := 0
	if err := tr.EachEntry(ctx, b.ID, func(jobs.Entry) error { count++; return nil }); err != nil || count < n {
		t.Fatalf("EachEntry visited %d, %v; want %d", count, err, n)
	}
	if c, err := tr.EntryCount(ctx, b.ID); err != nil || c != n {
		t.Fatalf("EntryCount = %d, %v", c, err)
	}
	if c, err := tr.EntryCount(ctx, "none"); err != nil || c != 0 {
		t.Fatalf("EntryCount of no batch = %d, %v", c, err)
	}
}
