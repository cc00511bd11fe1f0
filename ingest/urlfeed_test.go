package ingest_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// A feed's rows are image items the workers fetch: payloads carry the URL
// (Ref.Fetch), keys come from the key column or the URL; a row without a
// usable URL fails with its line.
func TestIngestFeedRowsAreImageItems(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	dir := t.TempDir()
	write(t, dir, "catalog.csv", []byte("sku,name,image_url,key\n"+
		"A1,Blue mug,https://cdn.example.com/img/a1.jpg,mugs/a1\n"+
		"B2,Red bowl,https://cdn.example.com/img/b2.png?w=800,\n"+
		"C3,No image,,\n"+
		"D4,Bad,ftp://example.com/x.jpg,\n"))
	write(t, dir, "more.jsonl", []byte(`{"url":"http://img.example.org/p/9.webp","sku":"Z9"}`+"\n"))
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{
		Sources: []string{"feed:" + filepath.Join(dir, "catalog.csv"), "feed:" + filepath.Join(dir, "more.jsonl")}, Out: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 5 || res.Enqueued != 3 {
		t.Fatalf("result %+v, want 5 rows, 3 queued", res)
	}
	entries, err := tr.Entries(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Status != jobs.StatusFailed || !strings.Contains(e.Error, "feed row: line ") {
			t.Errorf("entry %+v, want a failed row with its line", e)
		}
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ti := range tasks {
		p, err := itemtask.Decode(ti.Payload, func(id string) (jobs.Batch, error) { return tr.Get(ctx, id) })
		if err != nil {
			t.Fatal(err)
		}
		if p.Task != jobs.TaskCaption || p.Kind != jobs.KindImage || !strings.HasPrefix(p.Source.Location, "feed:") {
			t.Errorf("payload %+v", p)
		}
		got[p.Source.Key] = p.Source.Fetch
	}
	for key, u := range map[string]string{
		"mugs/a1":                  "https://cdn.example.com/img/a1.jpg",
		"img.example.org/p/9.webp": "http://img.example.org/p/9.webp",
	} {
		if got[key] != u {
			t.Errorf("key %s fetches %q, want %q (all: %v)", key, got[key], u, got)
		}
	}
	var b2 string
	for k := range got {
		if strings.HasPrefix(k, "cdn.example.com/img/b2.png_") {
			b2 = k
		}
	}
	if b2 == "" {
		t.Errorf("no key for the row without one: %v", got)
	}
}
