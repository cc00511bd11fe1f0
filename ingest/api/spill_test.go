package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
)

// A bounded batch whose finished entries were mostly spilled to its work
// area (jobs/spill) lists every item once through /items, by page number
// and by cursor, and counts them all.
func TestItemsOfASpilledBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	open := func(ctx context.Context, loc string) (storage.Store, error) {
		return backends.Open(ctx, loc, backends.Config{})
	}
	e.tracker.SetPages(open)
	b := jobs.Batch{ID: "spilled-api", Created: time.Now(), Spec: jobs.Spec{Sources: []string{e.src}, Out: e.out, Queue: jobs.QueueDefault, Tenant: "acme", MaxQueued: 5}}
	if err := e.tracker.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	const n, size = 150, 20
	for i := 1; i <= n; i++ {
		en := jobs.Entry{Item: fmt.Sprintf("i%03d", i), Seq: int64(i), Source: fmt.Sprintf("%s/%03d.txt", e.src, i), Status: jobs.StatusDone}
		if i%10 == 0 {
			en.Status, en.Error = jobs.StatusFailed, "bad"
		}
		if _, _, err := e.tracker.Record(ctx, b.ID, en); err != nil {
			t.Fatal(err)
		}
	}
	out, err := open(ctx, e.out)
	if err != nil {
		t.Fatal(err)
	}
	if moved, err := e.tracker.Spill(ctx, b.ID, out, size, nil); err != nil || moved < n/2 {
		t.Fatalf("Spill = %d, %v; want most of %d moved", moved, err, n)
	}
	if _, err := out.Stat(ctx, spill.PageKey(b.ID, 0)); err != nil {
		t.Fatalf("no page 0 in the work area: %v", err)
	}
	type itemsAnswer struct {
		Items      []jobs.Entry
		Total      int
		NextCursor string `json:"next_cursor"`
	}
	seen := map[string]int{}
	for page := 1; page <= n/25+1; page++ {
		var a itemsAnswer
		if code := e.do("GET", fmt.Sprintf("/v1/batches/%s/items?page=%d&per_page=25", b.ID, page), tokenA, nil, nil, &a); code != http.StatusOK || a.Total != n {
			t.Fatalf("page %d: %d, total %d; want 200, %d", page, code, a.Total, n)
		}
		for _, it := range a.Items {
			seen[it.Item]++
		}
	}
	if len(seen) != n {
		t.Fatalf("pages gave %d items, want %d", len(seen), n)
	}
	for item, c := range seen {
		if c != 1 {
			t.Errorf("pages gave %s %d times", item, c)
		}
	}
	seen = map[string]int{}
	path := fmt.Sprintf("/v1/batches/%s/items?per_page=40&cursor=0.0.40", b.ID)
	for range n {
		var a itemsAnswer
		if code := e.do("GET", path, tokenA, nil, nil, &a); code != http.StatusOK {
			t.Fatalf("%s: %d", path, code)
		}
		for _, it := range a.Items {
			seen[it.Item]++
		}
		if a.NextCursor == "" {
			break
		}
		path = fmt.Sprintf("/v1/batches/%s/items?per_page=40&cursor=%s", b.ID, a.NextCursor)
	}
	if len(seen) != n {
		t.Fatalf("cursor pages gave %d items, want %d", len(seen), n)
	}
	var failed itemsAnswer
	if code := e.do("GET", fmt.Sprintf("/v1/batches/%s/items?status=failed&per_page=100", b.ID), tokenA, nil, nil, &failed); code != http.StatusOK || len(failed.Items) != n/10 || failed.Total != n/10 {
		t.Fatalf("failed items: %d, %d of total %d; want %d", code, len(failed.Items), failed.Total, n/10)
	}
}
