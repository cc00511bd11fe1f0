package spill_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// On one Redis: see spillAndRead.
func TestSpillKeepsEveryEntryOnce(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBSpill)
	spillAndRead(t, rdb, "spill1")
}

// The same on the test Cluster: every key a spill touches is in the
// batch's slot (the commit script would fail with CROSSSLOT otherwise).
func TestSpillOnCluster(t *testing.T) {
	opt, err := redisconn.ParseURL(jobstest.ClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	spillAndRead(t, rdb, fmt.Sprintf("spillc-%d", time.Now().UnixNano()))
}

// spillAndRead records a bounded batch's entries (numbered ones, two
// without a Seq, a listing chunk ingest has passed), writes a page and
// "crashes" before its commit, then spills for real: the items hash shrinks
// below 2×size, the page written by the crashed spill is rewritten, and
// every reader (Entries, EntriesPage walked to the end, EntryCount, Entry)
// sees every entry exactly once. A duplicate record of a spilled item is
// not counted and Recorded says true; a tracker without an opener refuses
// to read the batch rather than miss entries.
func spillAndRead(t *testing.T, rdb redis.UniversalClient, id string) {
	ctx := context.Background()
	const prefix, size, numbered, chunkAt, chunkLen = "spilltest", 20, 100, 200, 5
	dir := t.TempDir()
	out, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := jobs.NewTracker(rdb, prefix)
	tr.SetPages(func(context.Context, string) (storage.Store, error) { return out, nil })
	b := jobs.Batch{ID: id, Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: dir, Queue: jobs.QueueDefault, MaxQueued: 5}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, k := range []string{jobs.BatchKey(prefix, id), jobs.BatchItemsKey(prefix, id), jobs.BatchRecordedKey(prefix, id), jobs.BatchSeriesKey(prefix, id), jobs.BatchTombstoneKey(prefix, id)} {
			rdb.Del(context.Background(), k)
		}
	})
	entry := func(i int, seq int64) jobs.Entry {
		st := jobs.StatusDone
		if i%7 == 0 {
			st = jobs.StatusFailed
		}
		return jobs.Entry{Item: fmt.Sprintf("item%03d", i), Seq: seq, Source: fmt.Sprintf("/src/%03d", i), Status: st}
	}
	for i := 1; i <= numbered; i++ {
		if _, _, err := tr.Record(ctx, id, entry(i, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := numbered + 1; i <= numbered+2; i++ { // no Seq: never spilled
		if _, _, err := tr.Record(ctx, id, entry(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var chunk []jobs.Entry
	for i := chunkAt; i < chunkAt+chunkLen; i++ {
		chunk = append(chunk, jobs.Entry{Item: fmt.Sprintf("item%03d", i), Seq: int64(i + 1), Source: fmt.Sprintf("/src/%03d", i), Status: jobs.StatusSkipped, Error: "unchanged"})
	}
	if _, err := tr.RecordListed(ctx, id, chunkAt, chunk); err != nil {
		t.Fatal(err)
	}
	const all = numbered + 2 + chunkLen
	keys := spill.Keys{Batch: jobs.BatchKey(prefix, id), Items: jobs.BatchItemsKey(prefix, id), Lock: jobs.BatchSpillLockKey(prefix, id)}

	// A spill that wrote page 0 and died before its commit.
	n, fs, err := spill.Collect(ctx, rdb, keys, size, chunkAt+chunkLen)
	entries := 0
	for _, f := range fs {
		entries += f.Entries
	}
	if err != nil || n != 0 || entries < size || entries >= size+chunkLen {
		t.Fatalf("Collect = %d, %d entries, %v; want page 0 of about %d entries", n, entries, err, size)
	}
	if err := spill.Write(ctx, out, id, n, fs); err != nil {
		t.Fatal(err)
	}
	checkAll(t, tr, id, all)

	moved, err := tr.Spill(ctx, id, out, size, func(context.Context) (int, error) { return chunkAt + chunkLen, nil })
	if err != nil || moved == 0 {
		t.Fatalf("Spill = %d, %v", moved, err)
	}
	if hl := rdb.HLen(ctx, keys.Items).Val(); hl >= 2*size {
		t.Errorf("items hash holds %d fields after the spill, want < %d", hl, 2*size)
	}
	pages, _ := rdb.HGet(ctx, keys.Batch, spill.PagesField).Int()
	if pages < 2 {
		t.Fatalf("%d pages spilled, want several", pages)
	}
	checkAll(t, tr, id, all)
	// The listing chunk and numbered entries left; the two without a Seq stayed.
	for _, f := range []string{"item101", "item102"} {
		if !rdb.HExists(ctx, keys.Items, f).Val() {
			t.Errorf("%s (no Seq) left the items hash", f)
		}
	}
	// A late commit of the crashed spill changes nothing.
	if _, ok, err := spill.Commit(ctx, rdb, keys, 0, "dead-worker", fs); err != nil || ok {
		t.Fatalf("stale commit = %v, %v; want refused", ok, err)
	}

	// Duplicate delivery of a spilled item: not counted again.
	var spilled jobs.Entry
	for i := 1; i <= numbered; i++ {
		if !rdb.HExists(ctx, keys.Items, fmt.Sprintf("item%03d", i)).Val() {
			spilled = entry(i, int64(i))
			break
		}
	}
	if spilled.Item == "" {
		t.Fatal("no numbered entry was spilled")
	}
	before, _ := tr.Counts(ctx, id)
	if rec, _, err := tr.Record(ctx, id, spilled); err != nil || rec {
		t.Fatalf("duplicate Record of spilled %s = %v, %v; want not recorded", spilled.Item, rec, err)
	}
	if ok, err := tr.Recorded(ctx, id, spilled.Item, spilled.Seq); err != nil || !ok {
		t.Fatalf("Recorded(spilled %s) = %v, %v; want true", spilled.Item, ok, err)
	}
	after, _ := tr.Counts(ctx, id)
	if after.Ended() != before.Ended() || after.Ended() != all {
		t.Fatalf("counts %+v after a duplicate, were %+v; want %d ended", after, before, all)
	}
	if e, ok, err := tr.Entry(ctx, id, spilled.Item); err != nil || !ok || e.Seq != spilled.Seq {
		t.Fatalf("Entry(spilled %s) = %+v, %v, %v", spilled.Item, e, ok, err)
	}
	checkAll(t, tr, id, all)

	blind := jobs.NewTracker(rdb, prefix)
	if _, err := blind.Entries(ctx, id); err == nil || !strings.Contains(err.Error(), "SetPages") {
		t.Fatalf("a tracker without an opener read a spilled batch: %v", err)
	}
}

// checkAll asserts every reader gives the batch's want entries once.
func checkAll(t *testing.T, tr *jobs.Tracker, id string, want int) {
	t.Helper()
	ctx := context.Background()
	es, err := tr.Entries(ctx, id)
	if err != nil || len(es) != want {
		t.Fatalf("Entries = %d, %v; want %d", len(es), err, want)
	}
	seen := map[string]int{}
	var cursor uint64
	for {
		page, next, err := tr.EntriesPage(ctx, id, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen[e.Item]++
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(seen) != want {
		t.Fatalf("EntriesPage walk gave %d items, want %d", len(seen), want)
	}
	for item, n := range seen {
		if n != 1 {
			t.Errorf("EntriesPage walk gave %s %d times", item, n)
		}
	}
	if n, err := tr.EntryCount(ctx, id); err != nil || n != want {
		t.Fatalf("EntryCount = %d, %v; want %d", n, err, want)
	}
	each := 0
	if err := tr.EachEntry(ctx, id, func(jobs.Entry) error { each++; return nil }); err != nil || each != want {
		t.Fatalf("EachEntry gave %d, %v; want %d", each, err, want)
	}
}
