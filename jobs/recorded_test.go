package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// An entry with a Seq is known recorded by its bit in BatchRecordedKey,
// also once its field left the items hash (spilled, jobs/spill): a second
// Record counts nothing, Recorded says true and a late progress report is
// dropped. Without a Seq only the hash answers.
func TestRecordedSurvivesLeavingTheHash(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBJobs)
	tr := jobs.NewTracker(rdb, "")
	ctx := context.Background()
	b := jobs.Batch{ID: "seq1", Created: time.Now(), Spec: jobs.Spec{Sources: []string{"/src"}, Out: "/out", Queue: jobs.QueueDefault, MaxQueued: 10}}
	if err := tr.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	e := jobs.Entry{Item: "a", Seq: 7, Source: "/src/a", Status: jobs.StatusDone, Cost: 0.5}
	if rec, _, err := tr.Record(ctx, b.ID, e); err != nil || !rec {
		t.Fatalf("first Record = %v, %v", rec, err)
	}
	if err := rdb.HDel(ctx, jobs.BatchItemsKey("", b.ID), "a").Err(); err != nil { // as a spill does
		t.Fatal(err)
	}
	if ok, err := tr.Recorded(ctx, b.ID, "a", 7); err != nil || !ok {
		t.Fatalf("Recorded(seq 7) after the field left = %v, %v; want true", ok, err)
	}
	if ok, _ := tr.Recorded(ctx, b.ID, "a", 0); ok {
		t.Fatal("Recorded without a seq answered from the bitmap")
	}
	if rec, _, err := tr.Record(ctx, b.ID, e); err != nil || rec {
		t.Fatalf("second Record = %v, %v; want not recorded", rec, err)
	}
	if n, err := tr.RecordMany(ctx, b.ID, []jobs.Entry{e}); err != nil || n != 0 {
		t.Fatalf("RecordMany again = %d, %v; want 0", n, err)
	}
	if n, _ := rdb.HLen(ctx, jobs.BatchItemsKey("", b.ID)).Result(); n != 0 {
		t.Fatalf("a duplicate came back into the items hash (%d fields)", n)
	}
	c, err := tr.Counts(ctx, b.ID)
	if err != nil || c.Done != 1 || c.Cost != 0.5 {
		t.Fatalf("counts %+v, %v; want done 1, cost 0.5", c, err)
	}
	// A late map task of the spilled item does not bring its progress back.
	if err := tr.SetProgressUnlessRecorded(ctx, b.ID, 7, jobs.Progress{Item: "a", Source: e.Source, Stage: "map", Done: 1, Total: 2}); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Progress(ctx, b.ID); len(got) != 0 {
		t.Errorf("progress of a spilled, recorded item: %+v", got)
	}
}
