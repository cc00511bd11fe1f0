package ingest_test

import (
	"bytes"
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
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
)

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func corpus(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("corpus file %s: %v", rel, err)
	}
	return b
}

func open(ctx context.Context, loc string) (storage.Store, error) {
	return backends.Open(ctx, loc, backends.Config{})
}

func TestIngestFolderClassifiesSkipsAndEnqueues(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, "contracts/a.txt", []byte("This Agreement is made between A and B."))
	write(t, src, "contracts/empty.txt", nil)
	write(t, src, "contracts/big.txt", bytes.Repeat([]byte("word "), 60000))
	write(t, src, "blob.bin", []byte{0x00, 0x01, 0x02, 0xfe, 0xff, 0x00, 0x10, 0x80, 0x81, 0x00})
	write(t, src, "img/photo.jpg", corpus(t, "images/formats/seeding_really_jpeg.png"))
	write(t, src, "img/text_named.jpg", corpus(t, "images/broken/text_named.jpg"))
	write(t, src, "img/seeding.heic", corpus(t, "images/formats/seeding.heic"))
	write(t, src, "skipme/x.txt", []byte("excluded by glob"))
	// The output folder inside the source must not be ingested.
	out := filepath.Join(src, "results")
	write(t, out, "old.summary.json", []byte(`{"x":1}`))

	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{
		// Overlapping sources (and one named twice) count each object once.
		Spec: jobs.Spec{Sources: []string{src, filepath.Join(src, "contracts"), src},
			Out: out, MaxSize: 200_000, Exclude: []string{"skipme/**"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// a.txt, photo.jpg (really JPEG) and seeding.heic are queued;
	// text_named.jpg (a name that lies) fails.
	if res.Total != 7 || res.Enqueued != 3 || res.Skipped != 4 {
		t.Errorf("result %+v, want total 7, enqueued 3, not queued 4", res)
	}
	entries, err := tr.Entries(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, e := range entries {
		want := jobs.StatusSkipped
		if filepath.Base(e.Source) == "text_named.jpg" {
			want = jobs.StatusFailed
		}
		if e.Status != want {
			t.Errorf("%s: status %s, want %s", e.Source, e.Status, want)
		}
		if testing.Verbose() {
			t.Logf("%s: %s", e.Source, e.Error)
		}
		reasons[filepath.Base(e.Source)] = e.Error
	}
	for name, want := range map[string]string{
		"empty.txt":      "empty file",
		"big.txt":        "too large",
		"blob.bin":       "unknown file type",
		"text_named.jpg": "named .jpg but holds plain text",
	} {
		if !strings.Contains(reasons[name], want) {
			t.Errorf("%s: reason %q, want it to contain %q", name, reasons[name], want)
		}
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]jobs.ItemPayload{}
	for _, ti := range tasks {
		p, err := itemtask.Decode(ti.Payload, func(id string) (jobs.Batch, error) { return tr.Get(ctx, id) })
		if err != nil {
			t.Fatal(err)
		}
		// References only: what the batch record holds is not repeated.
		if strings.Contains(string(ti.Payload), out) {
			t.Fatalf("payload repeats the output location: %s", ti.Payload)
		}
		if strings.Contains(string(ti.Payload), "Agreement is made") {
			t.Fatal("payload carries document text")
		}
		byKey[p.Source.Key] = p
	}
	if len(byKey) != 3 {
		t.Fatalf("%d pending tasks, want 3: %v", len(byKey), byKey)
	}
	if p := byKey["img/seeding.heic"]; p.Task != jobs.TaskCaption || p.Type != jobs.FileHEIC {
		t.Errorf("HEIC payload %+v", p)
	}
	if p := byKey["img/photo.jpg"]; p.Task != jobs.TaskCaption || p.Type != jobs.FileJPEG || !strings.HasPrefix(p.ResultBase, "1-") || !strings.HasSuffix(p.ResultBase, "/img/photo.jpg") {
		t.Errorf("photo payload %+v", p)
	}
	c, err := tr.Counts(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sealed || c.Total != 7 || c.Skipped != 3 || c.Failed != 1 || c.Complete() {
		t.Fatalf("counts %+v", c)
	}
}

// A name that lies about its content fails with a reason that says both;
// --trust-content (Spec.TrustContent) processes it by its content.
func TestIngestNameThatLiesFailsUnlessContentTrusted(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, "photo.jpg", corpus(t, "images/broken/text_named.jpg"))
	write(t, src, "contract.pdf", corpus(t, "images/formats/seeding_really_jpeg.png"))
	write(t, src, "really.png", corpus(t, "images/formats/seeding_really_jpeg.png")) // an image either way
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	for _, trust := range []bool{false, true} {
		res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), TrustContent: trust}})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := tr.Entries(ctx, res.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]jobs.Entry{}
		for _, e := range entries {
			got[filepath.Base(e.Source)] = e
		}
		if !trust {
			if res.Enqueued != 1 || len(entries) != 2 {
				t.Fatalf("result %+v, entries %+v: want really.png queued, two failed", res, entries)
			}
			for name, want := range map[string]string{
				"photo.jpg":    "named .jpg but holds plain text",
				"contract.pdf": "named .pdf but holds a JPEG image",
			} {
				if e := got[name]; e.Status != jobs.StatusFailed || !strings.Contains(e.Error, want) || !strings.Contains(e.Error, "--trust-content") {
					t.Errorf("%s: %s %q, want failed with %q", name, e.Status, e.Error, want)
				}
			}
			continue
		}
		if res.Enqueued != 3 || len(entries) != 0 {
			t.Errorf("trusting content: result %+v, entries %+v, want all three queued", res, entries)
		}
	}
}

func TestIngestTaskFilterAndAllSkippedBatchFinalizes(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src := t.TempDir()
	write(t, src, "a.txt", []byte("Just text."))
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Task: jobs.TaskCaption, Queue: jobs.QueueNightly}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 1 || res.Enqueued != 0 {
		t.Fatalf("result %+v", res)
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	// Every item already ended: ingest itself queued the finalize task.
	tasks, err := insp.ListPendingTasks(jobs.QueueNightly)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != jobs.TypeFinalize {
		t.Fatalf("pending %+v, want one finalize task", tasks)
	}
	if _, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: t.TempDir(), Task: "translate"}}); err == nil {
		t.Fatal("unknown task accepted")
	}
	if _, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}}}); err == nil {
		t.Fatal("missing --out accepted")
	}
}
