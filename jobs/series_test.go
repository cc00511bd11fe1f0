package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/series"
)

// Recording an item counts it once in its minute of Redis's clock
// (BatchSeriesKey), with its cost;
// the series key lives as long as the batch's record once finalized.
func TestRecordCountsItemsPerMinute(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "series1", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	before, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	entries := []jobs.Entry{
		{Item: "a", Status: jobs.StatusDone, InputTokens: 100, OutputTokens: 10, Cost: 0.25, DurationMS: 1200},
		{Item: "b", Status: jobs.StatusDone, InputTokens: 100, OutputTokens: 10, Cost: 0.5, DurationMS: 800},
		{Item: "c", Status: jobs.StatusFailed, InputTokens: 50, DurationMS: 400},
		{Item: "d", Status: jobs.StatusSkipped, DurationMS: 3},
		{Item: "a", Status: jobs.StatusDone, InputTokens: 100, OutputTokens: 10, Cost: 0.25, DurationMS: 1200}, // a duplicate
	}
	for _, e := range entries[:3] {
		if _, _, err := tr.Record(ctx, b.ID, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.RecordMany(ctx, b.ID, entries[3:]); err != nil {
		t.Fatal(err)
	}
	after, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.Series(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum series.Bucket
	for _, bk := range series.Parse(h) {
		if bk.Minute.Before(before.Truncate(time.Minute)) || bk.Minute.After(after) {
			t.Errorf("bucket %v outside [%v, %v]", bk.Minute, before, after)
		}
		sum.Done, sum.Failed, sum.Skipped = sum.Done+bk.Done, sum.Failed+bk.Failed, sum.Skipped+bk.Skipped
		sum.ModelCalls, sum.Cost = sum.ModelCalls+bk.ModelCalls, sum.Cost+bk.Cost
	}
	if sum.Done != 2 || sum.Failed != 1 || sum.Skipped != 1 || sum.ModelCalls != 0 || sum.Cost != 0.75 {
		t.Errorf("series sums %+v, want 2 done, 1 failed, 1 skipped, cost 0.75, no model calls (CountModelCall counts those)", sum)
	}

	if _, err := tr.Seal(ctx, b.ID, 4); err != nil {
		t.Fatal(err)
	}
	if err := tr.Expire(ctx, b, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, jobs.BatchSeriesKey("", b.ID)).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("series TTL after Expire = %v, %v; want the retention (1h)", ttl, err)
	}
}

// CountModelCall counts each model call in its minute of Redis's clock
// (calls, summed ms, failed sends); a batch without a record gets no key
// at all; once the batch key has a TTL the series key gets it too.
func TestCountModelCallPerMinute(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "calls1", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	before, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		d      time.Duration
		failed bool
	}{{1200 * time.Millisecond, false}, {800 * time.Millisecond, false}, {300 * time.Millisecond, true}}
	var wantMS int64
	for _, c := range calls {
		if err := tr.CountModelCall(ctx, b.ID, c.d, c.failed); err != nil {
			t.Fatal(err)
		}
		wantMS += c.d.Milliseconds()
	}
	after, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	h, err := tr.Series(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum series.Bucket
	for _, bk := range series.Parse(h) {
		if bk.Minute.Before(before.Truncate(time.Minute)) || bk.Minute.After(after) {
			t.Errorf("bucket %v outside [%v, %v]", bk.Minute, before, after)
		}
		sum.ModelCalls, sum.ModelMS, sum.ModelErrors = sum.ModelCalls+bk.ModelCalls, sum.ModelMS+bk.ModelMS, sum.ModelErrors+bk.ModelErrors
		if bk.Ended() != 0 {
			t.Errorf("a model call counted an item end: %+v", bk)
		}
	}
	if sum.ModelCalls != len(calls) || sum.ModelMS != wantMS || sum.ModelErrors != 1 {
		t.Errorf("series sums %+v, want %d calls, %d ms, 1 error", sum, len(calls), wantMS)
	}
	if ttl, err := rdb.PTTL(ctx, jobs.BatchSeriesKey("", b.ID)).Result(); err != nil || ttl != -1 {
		t.Errorf("series TTL of a running batch = %v, %v; want none, like its batch key", ttl, err)
	}

	// A batch with no record (gone, or never made): nothing written.
	if err := tr.CountModelCall(ctx, "nobatch", time.Second, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{jobs.BatchSeriesKey("", "nobatch"), jobs.BatchKey("", "nobatch")} {
		if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("%s exists (%d, %v) after counting a call of a batch without a record", k, n, err)
		}
	}

	// A call that ends after the batch key got its TTL gives the series it.
	if err := rdb.PExpire(ctx, jobs.BatchKey("", b.ID), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Persist(ctx, jobs.BatchSeriesKey("", b.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := tr.CountModelCall(ctx, b.ID, time.Second, false); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, jobs.BatchSeriesKey("", b.ID)).Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("series TTL after a call of a batch with a TTL = %v, %v; want the batch key's (1h)", ttl, err)
	}
}
