package jobs_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// keysWithoutTTL lists the keys of the database that have no TTL, asynq's
// own (asynq:…) left out.
func keysWithoutTTL(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	ctx := context.Background()
	var none []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.HasPrefix(key, "asynq:") {
			continue
		}
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -1 { // go-redis gives -1 (ns) for "no TTL"
			none = append(none, key)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return none
}

// runBatch creates, fills, seals and finalizes (Expire, MarkFinalized, as
// finalize does) one batch of tenant acme.
func runBatch(t *testing.T, tr *jobs.Tracker, id string, created time.Time, retention time.Duration) jobs.Batch {
	t.Helper()
	ctx := context.Background()
	b := jobs.Batch{ID: id, Created: created, Spec: jobs.Spec{Queue: jobs.QueueDefault, Tenant: "acme", Out: "s3://out/"}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := tr.SetProgress(ctx, id, jobs.Progress{Item: "1", Source: "/src/a", Stage: "map"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []jobs.Entry{{Item: "1", Source: "/src/a", Status: jobs.StatusDone}, {Item: "2", Source: "/src/b", Status: jobs.StatusFailed, Error: "bad"}} {
		if _, _, err := tr.Record(ctx, id, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Seal(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := tr.Expire(ctx, b, retention, now); err != nil {
		t.Fatal(err)
	}
	if err := tr.MarkFinalized(ctx, id, now); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFinalizedBatchKeysAllHaveATTL(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{ID: "running", Created: time.Now(), Spec: jobs.Spec{Tenant: "acme"}}); err != nil {
		t.Fatal(err)
	}
	// A running batch's record and items live until it is finalized.
	if none := keysWithoutTTL(t, rdb); len(none) != 1 || none[0] != jobs.BatchKey("", "running") {
		t.Errorf("keys without a TTL while a batch runs: %v, want only its record", none)
	}
	if err := rdb.Del(ctx, jobs.BatchKey("", "running")).Err(); err != nil {
		t.Fatal(err)
	}
	runBatch(t, tr, "b1", time.Now(), time.Hour)
	if none := keysWithoutTTL(t, rdb); len(none) > 0 {
		t.Errorf("keys without a TTL after the batch was finalized: %v", none)
	}
	for _, key := range []string{jobs.BatchKey("", "b1"), jobs.BatchItemsKey("", "b1")} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("%s: TTL %s, want the retention (1h)", key, ttl)
		}
	}
	if n := rdb.Exists(ctx, jobs.BatchProgressKey("", "b1")).Val(); n != 0 {
		t.Error("progress kept after finalize")
	}
	if ttl := rdb.PTTL(ctx, jobs.BatchTombstoneKey("", "b1")).Val(); ttl < jobs.TombstoneTTL {
		t.Errorf("tombstone TTL %s, want the retention + %s", ttl, jobs.TombstoneTTL)
	}
	for _, key := range []string{jobs.BatchesKey(""), jobs.TenantBatchesKey("", "acme")} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl < jobs.DefaultRetention-time.Minute {
			t.Errorf("%s: TTL %s, want at least %s", key, ttl, jobs.DefaultRetention)
		}
	}
}

func TestIndexesLoseBatchesPastTheRetention(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	runBatch(t, tr, "old", time.Now().Add(-3*time.Hour), 2*time.Hour)
	runBatch(t, tr, "new", time.Now(), 2*time.Hour)
	for _, list := range []func() ([]string, error){
		func() ([]string, error) { return tr.List(ctx, 0) },
		func() ([]string, error) { return tr.ListTenant(ctx, "acme", 0) },
	} {
		if ids, err := list(); err != nil || len(ids) != 1 || ids[0] != "new" {
			t.Errorf("index %v, %v: want only the batch created within the retention", ids, err)
		}
	}
}

func TestGoneBatchIsExpiredOrLost(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()

	// Expired: finalized with a tiny retention.
	runBatch(t, tr, "short", time.Now(), 20*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	_, err := tr.Get(ctx, "short")
	g := jobs.Gone(err)
	if !errors.Is(err, jobs.ErrBatchExpired) || !errors.Is(err, jobs.ErrNoBatch) || errors.Is(err, jobs.ErrBatchLost) ||
		g == nil || g.State != jobs.StateExpired || g.Tenant != "acme" || g.Finished.IsZero() {
		t.Errorf("Get of an expired batch: %v (%+v)", err, g)
	}
	if _, err := tr.Counts(ctx, "short"); !errors.Is(err, jobs.ErrBatchExpired) {
		t.Errorf("Counts of an expired batch: %v", err)
	}
	// A late duplicate delivery records nothing and leaves no key without
	// a TTL.
	_, _, err = tr.Record(ctx, "short", jobs.Entry{Item: "1", Source: "/src/a", Status: jobs.StatusDone})
	if !errors.Is(err, jobs.ErrBatchExpired) || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("Record into an expired batch: %v", err)
	}

	// Lost: the record vanished while the batch ran (its tombstone says
	// it existed).
	if err := tr.Create(ctx, jobs.Batch{ID: "running", Created: time.Now(), Spec: jobs.Spec{Tenant: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, jobs.BatchKey("", "running")).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Counts(ctx, "running")
	if g := jobs.Gone(err); !errors.Is(err, jobs.ErrBatchLost) || g == nil || g.State != jobs.StateLost || g.Tenant != "acme" {
		t.Errorf("Counts of a lost batch: %v", err)
	}

	// Lost with everything (FLUSHDB mid-batch): a worker's record marks it.
	if err := tr.Create(ctx, jobs.Batch{ID: "flushed", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Get(ctx, "flushed"); !errors.Is(err, jobs.ErrNoBatch) || jobs.Gone(err) != nil {
		t.Errorf("Get after FLUSHDB, before any record: %v, want unknown", err)
	}
	_, _, err = tr.Record(ctx, "flushed", jobs.Entry{Item: "1", Source: "/src/a", Status: jobs.StatusDone})
	if !errors.Is(err, jobs.ErrBatchLost) || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("Record after FLUSHDB: %v, want lost and no retry", err)
	}
	if _, err := tr.Counts(ctx, "flushed"); !errors.Is(err, jobs.ErrBatchLost) {
		t.Errorf("Counts after FLUSHDB and a record: %v, want lost", err)
	}
	if none := keysWithoutTTL(t, rdb); len(none) > 0 {
		t.Errorf("keys without a TTL: %v", none)
	}
}

func TestEachEntryGivesEveryEntryOncePageByPage(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{ID: "big", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 1234
	for i := range n {
		e := jobs.Entry{Item: string(rune('a'+i%26)) + strings.Repeat("x", i%7) + strconv.Itoa(i), Source: "/src/" + strconv.Itoa(i), Status: jobs.StatusDone}
		if _, _, err := tr.Record(ctx, "big", e); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	err := tr.EachEntry(ctx, "big", func(e jobs.Entry) error {
		if seen[e.Item] {
			t.Errorf("entry %s given twice", e.Item)
		}
		seen[e.Item] = true
		return nil
	})
	if err != nil || len(seen) != n {
		t.Fatalf("EachEntry: %d entries, %v; want %d", len(seen), err, n)
	}
	stop := errors.New("stop")
	if err := tr.EachEntry(ctx, "big", func(jobs.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: %v", err)
	}
}
