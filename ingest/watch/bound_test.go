package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// A watched inbox's batch with a bound (Spec.MaxQueued) never has more than
// the bound of items in the queue: the watcher waits, the objects not yet
// taken waiting in the inbox, and goes on as items end; every object then
// ends up once in the batch.
func TestWatchHonoursMaxQueued(t *testing.T) {
	const bound, n = 2, 7
	e := newEnv(t)
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("d%d.txt", i)), []byte(doc(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	queued := func() int {
		tasks, err := insp.ListPendingTasks(jobs.QueueDefault, asynq.PageSize(100))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, ti := range tasks {
			if ti.Type == jobs.TypeItem {
				k++
			}
		}
		return k
	}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: out, MaxQueued: bound}}
	w := e.watcher(t, o, Config{Name: "bounded", RoomEvery: 20 * time.Millisecond})
	type polled struct {
		st  Stats
		err error
	}
	done := make(chan polled, 1)
	go func() { st, err := w.Poll(ctx); done <- polled{st, err} }()
	waitFor(t, "the bound's items queued", func() bool { return queued() == bound })
	// No worker runs: no item can end, so the watcher must still be waiting
	// after many looks for room, with the bound queued.
	for range 10 {
		time.Sleep(20 * time.Millisecond)
		select {
		case p := <-done:
			t.Fatalf("poll returned with %+v (%v) while its batch had its bound queued", p.st, p.err)
		default:
		}
		if q := queued(); q > bound {
			t.Fatalf("%d items queued, over the bound of %d", q, bound)
		}
	}
	e.startWorker(t, offline.New(offline.Options{}))
	var p polled
	waitFor(t, "the poll to take every object", func() bool {
		if q := queued(); q > bound {
			t.Fatalf("%d items queued, over the bound of %d", q, bound)
		}
		select {
		case p = <-done:
			return true
		default:
			return false
		}
	})
	if p.err != nil || p.st.Added != n {
		t.Fatalf("poll: %+v, %v; want %d added", p.st, p.err, n)
	}
	batch, count, err := w.Current(ctx)
	if err != nil || count != n {
		t.Fatalf("current batch %s holds %d (%v), want %d", batch, count, err, n)
	}
	waitFor(t, "every item to end", func() bool {
		c, err := e.tracker.Counts(ctx, batch)
		return err == nil && c.Ended() == n
	})
	entries, err := e.tracker.Entries(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, en := range entries {
		seen[en.Source]++
	}
	if len(entries) != n || len(seen) != n {
		t.Fatalf("%d entries for %d sources, want %d each", len(entries), len(seen), n)
	}
}
