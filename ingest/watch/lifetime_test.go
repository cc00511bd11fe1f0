package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage/storagetest"
)

// A watch's state and seen keys carry its retention, renewed by each poll,
// and go once the watch is idle that long.
func TestWatchStateExpiresWhenIdle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bucket := storagetest.NewS3Store(t, "").Bucket()
	srcURL := "s3://" + bucket + "/inbox"
	src := e.store(t, srcURL)
	for i := range 2 {
		put(t, src, fmt.Sprintf("c%d.txt", i), doc(i))
	}
	w := e.watcher(t, ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: t.TempDir()}}, Config{Retention: time.Hour})
	if _, err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{jobs.WatchStateKey("", "inbox"), jobs.WatchSeenKey("", "inbox")} {
		if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("%s: TTL %s, want the watch's retention (1h)", key, ttl)
		}
	}
	short := e.watcher(t, ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: t.TempDir()}}, Config{Retention: 30 * time.Millisecond})
	if _, err := short.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if n := e.rdb.Exists(ctx, jobs.WatchStateKey("", "inbox"), jobs.WatchSeenKey("", "inbox")).Val(); n != 0 {
		t.Errorf("%d watch keys left after the watch was idle for its retention", n)
	}
}
