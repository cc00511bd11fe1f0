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
// (BatchSeriesKey), with the model-calling items' duration and the cost;
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
		sum.Calls, sum.MS, sum.Cost = sum.Calls+bk.Calls, sum.MS+bk.MS, sum.Cost+bk.Cost
	}
	if sum.Done != 2 || sum.Failed != 1 || sum.Skipped != 1 || sum.Calls != 3 || sum.MS != 2400 || sum.Cost != 0.75 {
		t.Errorf("series sums %+v, want 2 done, 1 failed, 1 skipped, 3 calls, 2400 ms, cost 0.75", sum)
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
