package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// Every attachment of an email is an item of its own, with its message as
// parent and its name in its result key; a bomb of nested parts fails.
func TestIngestEmailAttachmentsAreItems(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	for _, n := range []string{"with_pdf_and_jpeg.eml", "nested_message.eml", "bomb_nested_parts.eml"} {
		b, err := os.ReadFile(filepath.Join("..", "jobs", "mailparts", "testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		write(t, src, "inbox/"+n, b)
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 7 || res.Enqueued != 6 {
		t.Fatalf("result %+v: want 7 items (3 messages, 4 attachments), 6 queued", res)
	}
	entries, err := tr.Entries(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Status != jobs.StatusFailed || !strings.Contains(entries[0].Error, "nested deeper than") ||
		!strings.HasSuffix(entries[0].Source, "bomb_nested_parts.eml") {
		t.Fatalf("entries %+v: want the bomb failed", entries)
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	byBase := map[string]jobs.ItemPayload{}
	for _, ti := range tasks {
		p, err := itemtask.Decode(ti.Payload, func(id string) (jobs.Batch, error) { return tr.Get(ctx, id) })
		if err != nil {
			t.Fatal(err)
		}
		if len(ti.Payload) > 2000 {
			t.Errorf("payload of %d bytes: it must hold a reference, not the attachment", len(ti.Payload))
		}
		byBase[p.ResultBase[strings.Index(p.ResultBase, "inbox/"):]] = p
	}
	msg := byBase["inbox/with_pdf_and_jpeg.eml"]
	if msg.Type != jobs.FileEML || msg.Task != jobs.TaskSummarize || msg.Parent != "" {
		t.Errorf("message payload %+v", msg)
	}
	for base, want := range map[string]struct {
		typ    jobs.FileType
		task   string
		parent string
	}{
		"inbox/with_pdf_and_jpeg.eml.parts/2-agreement.pdf":   {jobs.FilePDF, jobs.TaskSummarize, "inbox/with_pdf_and_jpeg.eml"},
		"inbox/with_pdf_and_jpeg.eml.parts/3-site photo.jpg":  {jobs.FileJPEG, jobs.TaskCaption, "inbox/with_pdf_and_jpeg.eml"},
		"inbox/nested_message.eml.parts/2-Fwd price list.eml": {jobs.FileEML, jobs.TaskSummarize, "inbox/nested_message.eml"},
		"inbox/nested_message.eml.parts/2.2-prices.pdf":       {jobs.FilePDF, jobs.TaskSummarize, "inbox/nested_message.eml#part=2"},
	} {
		p, ok := byBase[base]
		if !ok {
			t.Errorf("no task for %s (have %v)", base, keys(byBase))
			continue
		}
		if p.Type != want.typ || p.Task != want.task || !strings.HasSuffix(p.Parent, want.parent) || p.Source.Part == "" ||
			!strings.HasSuffix(p.Source.URL(), "#part="+p.Source.Part) {
			t.Errorf("%s: %+v, want %s/%s with parent …%s", base, p, want.typ, want.task, want.parent)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A retried attachment (an explicit item with a part, as Retry makes from
// a manifest entry) is the attachment again, not its message; a retried
// feed row is looked up in the feed again.
func TestIngestRetriedAttachmentAndFeedRow(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "jobs", "mailparts", "testdata", "with_pdf_and_jpeg.eml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, "m.eml", b)
	write(t, src, "feed.csv", []byte("url,key\nhttps://cdn.example.com/a.jpg,a\n"))
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Queue: jobs.QueueCritical},
		Items: []ingest.ItemRef{
			{Location: src, Key: "m.eml", Part: "3", ResultBase: "m.eml.parts/3-site photo.jpg"},
			{Location: "feed:" + filepath.Join(src, "feed.csv"), Key: "a", ResultBase: "a"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 2 || res.Enqueued != 2 {
		t.Fatalf("result %+v", res)
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(jobs.QueueCritical)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]jobs.ItemPayload{}
	for _, ti := range tasks {
		p, _ := itemtask.Decode(ti.Payload, func(id string) (jobs.Batch, error) { return tr.Get(ctx, id) })
		got[p.ResultBase] = p
	}
	if p := got["m.eml.parts/3-site photo.jpg"]; p.Source.Part != "3" || p.Type != jobs.FileJPEG || p.Task != jobs.TaskCaption || p.Parent == "" {
		t.Errorf("retried attachment %+v", p)
	}
	if p := got["a"]; p.Source.Fetch != "https://cdn.example.com/a.jpg" || p.Task != jobs.TaskCaption {
		t.Errorf("retried feed row %+v", p)
	}
}
