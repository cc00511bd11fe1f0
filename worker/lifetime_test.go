package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// liveQueues are the keys of ours that may stay without a TTL: live queues
// (jobs/keys.go), which empty themselves.
func liveQueue(key string) bool {
	return strings.HasSuffix(key, ":processing") || strings.HasSuffix(key, ":pending") || strings.Contains(key, ":fair:")
}

// After a batch of every kind of input is finalized, every key llamapipe
// wrote has a TTL (asynq's own keys and the live queues aside), and a tiny
// retention makes the batch expire.
func TestFinalizedBatchLeavesNoKeyWithoutTTL(t *testing.T) {
	e := newEnv(t)
	src, outDir := t.TempDir(), t.TempDir()
	fillSource(t, func(key string, data []byte) {
		p := filepath.Join(src, filepath.FromSlash(key))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Tenant: "acme"}})
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 4, Retention: 3 * time.Second}, nil)
	out, _ := e.open(context.Background(), outDir)
	e.wait(res.BatchID, out, 2*time.Minute)

	opt, err := asynq.ParseRedisURI(e.url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ctx := context.Background()
	var ours int
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.HasPrefix(key, "asynq:") {
			continue
		}
		ours++
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -1 && !liveQueue(key) {
			t.Errorf("%s has no TTL", key)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if ours < 3 {
		t.Errorf("only %d keys of ours: the scan found nothing to check", ours)
	}
	if ttl := rdb.PTTL(ctx, jobs.BatchKey("", res.BatchID)).Val(); ttl <= 0 || ttl > 3*time.Second {
		t.Errorf("batch record TTL %s, want the 3s retention", ttl)
	}
	// Past the retention the batch is expired, not unknown.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.tracker.Counts(ctx, res.BatchID)
		if g := jobs.Gone(err); g != nil && g.State == jobs.StateExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not expired after its retention: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(outDir, "batches", res.BatchID, jobs.ManifestKey)); err != nil {
		t.Errorf("the batch's own manifest: %v", err)
	}
}
