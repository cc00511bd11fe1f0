package dashboard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// A batch whose records expired (a tiny retention fast-forwards it) or
// vanished says so, on its page (410) and in the list.
func TestGoneBatchIsExpiredOrLost(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	b, err := f.tracker.Get(ctx, f.batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tracker.Expire(ctx, b, 10*time.Millisecond, time.Now()); err != nil { // what finalize does
		t.Fatal(err)
	}
	if err := f.tracker.Create(ctx, jobs.Batch{ID: "b-lost", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Del(ctx, jobs.BatchKey("", "b-lost")).Err(); err != nil { // Redis lost it
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	res, body := f.do(t, "GET", "/batches/"+f.batch, "basic", nil)
	if res.StatusCode != 410 || !strings.Contains(body, "expired") {
		t.Errorf("expired batch: %d %q", res.StatusCode, body)
	}
	res, body = f.do(t, "GET", "/batches/b-lost", "basic", nil)
	if res.StatusCode != 410 || !strings.Contains(body, "lost") {
		t.Errorf("lost batch: %d %q", res.StatusCode, body)
	}
	if res, _ := f.do(t, "GET", "/batches/never", "basic", nil); res.StatusCode != 404 {
		t.Errorf("unknown batch: %d", res.StatusCode)
	}
	// The list names the lost batch; the expired one, created before the
	// retention, left the index when it was finalized.
	res, body = f.do(t, "GET", "/", "basic", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "b-lost (lost)") || strings.Contains(body, "b-progress") {
		t.Errorf("list: %d, want the lost batch named and the expired one gone:\n%s", res.StatusCode, body)
	}
}
