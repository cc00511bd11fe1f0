package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/cancel"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

func TestCancelRemovesQueuedAndStopsRunning(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	model := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 8192, MaxOutputTokens: 1024},
		fn: func(n int64, req llm.Request) (llm.Response, error) {
			calls.Add(1)
			time.Sleep(150 * time.Millisecond)
			return llm.Response{Text: goodSummary, Model: "m", Usage: llm.Usage{InputTokens: 10, OutputTokens: 5}}, nil
		}}
	src, outDir := textInputs(t, 40), t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir}})
	e.startWorker(model, 2)
	for calls.Load() < 4 {
		time.Sleep(10 * time.Millisecond)
	}
	client := asynq.NewClient(jobstest.ConnOpt(t, e.url))
	defer client.Close()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	removed, err := cancel.Batch(context.Background(), e.tracker, insp, client, res.BatchID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, _ := e.open(context.Background(), outDir)
	es := e.wait(res.BatchID, out, time.Minute)
	done, cancelled := 0, 0
	for _, en := range byName(t, es) {
		switch en.Status {
		case jobs.StatusDone:
			done++
		case jobs.StatusCancelled:
			cancelled++
			if !strings.Contains(en.Error, "cancelled") {
				t.Errorf("cancelled entry without its reason: %+v", en)
			}
		default:
			t.Errorf("entry %+v", en)
		}
	}
	if len(es) != 40 || done+cancelled != 40 || removed < 30 || done > 10 {
		t.Errorf("%d entries: %d done, %d cancelled (%d removed from the queue)", len(es), done, cancelled, removed)
	}
	if n := calls.Load(); n > int64(done)+2 {
		t.Errorf("%d model calls for %d done items: cancelled items reached the model", n, done)
	}
	c, _ := e.tracker.Counts(context.Background(), res.BatchID)
	if c.Cancelled != cancelled || !c.CancelRequested {
		t.Errorf("counts %+v", c)
	}
}

func TestRetryReprocessesOnlyFailedItems(t *testing.T) {
	e := newEnv(t)
	var broken atomic.Bool
	broken.Store(true)
	seen := map[string]int{}
	var mu = make(chan struct{}, 1)
	model := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 8192, MaxOutputTokens: 1024},
		fn: func(n int64, req llm.Request) (llm.Response, error) {
			doc := req.Parts[len(req.Parts)-1].Text
			mu <- struct{}{}
			seen[doc]++
			<-mu
			if broken.Load() && (strings.Contains(doc, "number 1 ") || strings.Contains(doc, "number 3 ")) {
				return llm.Response{}, &llm.Error{Kind: llm.Permanent, Status: 400, Message: "context_length_exceeded"}
			}
			return llm.Response{Text: goodSummary, Model: "m"}, nil
		}}
	src, outDir := textInputs(t, 5), t.TempDir()
	// A second source makes result keys carry a source prefix: the retry
	// must write to the same keys.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "z.txt"), []byte("Contract number 3 between C and D."), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startWorker(model, 2)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src, other}, Out: outDir}})
	out, _ := e.open(context.Background(), outDir)
	first := byName(t, e.wait(res.BatchID, out, time.Minute))
	if first["doc01.txt"].Status != jobs.StatusFailed || first["z.txt"].Status != jobs.StatusFailed || first["doc00.txt"].Status != jobs.StatusDone {
		t.Fatalf("first batch: %+v", first)
	}
	broken.Store(false)
	in := &ingest.Ingester{Open: e.open, Queue: asynq.NewClient(jobstest.ConnOpt(t, e.url)), Tracker: e.tracker}
	if _, err := in.Retry(context.Background(), res.BatchID, ingest.RetryOptions{Reason: "no such reason"}); err == nil {
		t.Error("a retry matching nothing was accepted")
	}
	r, err := in.Retry(context.Background(), res.BatchID, ingest.RetryOptions{Reason: "CONTEXT_LENGTH"})
	if err != nil {
		t.Fatal(err)
	}
	second := byName(t, e.wait(r.BatchID, out, time.Minute))
	if len(second) != 3 {
		t.Fatalf("retry batch has %d items, want the 3 failed ones: %+v", len(second), second)
	}
	for name, en := range second {
		if en.Status != jobs.StatusDone || en.ResultBase != first[name].ResultBase {
			t.Errorf("retried %s: %+v (first: result base %q)", name, en, first[name].ResultBase)
		}
	}
	b, _ := e.tracker.Get(context.Background(), r.BatchID)
	if b.RetryOf != res.BatchID {
		t.Errorf("retry batch does not link the old one: %+v", b)
	}
	for doc, n := range seen {
		if strings.Contains(doc, "number 0 ") && n != 1 {
			t.Errorf("a done item was sent again (%d times): %q", n, doc)
		}
	}
}

// TestEveryCorpusPDFEndsWithAReason: the broken and encrypted PDFs of the
// corpus, with the corpus password file, through ingest and a worker: each
// ends done or failed with a reason; none takes the worker down.
func TestEveryCorpusPDFEndsWithAReason(t *testing.T) {
	e := newEnv(t)
	pw := map[string]string{}
	for k, v := range jobstest.PDFPasswords(t) {
		if v != nil {
			pw[filepath.Base(k)] = *v
		}
	}
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 2, PDFPasswords: pw}, nil)
	var srcs []string
	for _, f := range []string{"broken", "encrypted"} {
		srcs = append(srcs, jobstest.CorpusDir(t, "pdfs", f))
	}
	outDir := t.TempDir()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: srcs, Out: outDir, Task: jobs.TaskSummarize}})
	out, _ := e.open(context.Background(), outDir)
	es := byName(t, e.wait(res.BatchID, out, 3*time.Minute))
	if len(es) != len(jobstest.CorpusFiles(t, "*.pdf", "pdfs", "broken"))+len(jobstest.CorpusFiles(t, "*.pdf", "pdfs", "encrypted")) {
		t.Fatalf("%d entries", len(es))
	}
	for name, en := range es {
		if en.Status != jobs.StatusDone && en.Error == "" {
			t.Errorf("%s: %s without a reason", name, en.Status)
		}
		t.Logf("%-45s %-7s %s", name, en.Status, en.Error)
	}
	// With passwords.json the user-password files open; the one whose
	// password is unknown says a password is needed.
	if en := es["gen_contract_userpw_aes256.pdf"]; en.Status != jobs.StatusDone {
		t.Errorf("user-password PDF with its password: %+v", en)
	}
	if en := es["pr6531_1.pdf"]; en.Status != jobs.StatusFailed || !strings.Contains(en.Error, "password is required") {
		t.Errorf("PDF with an unknown password: %+v", en)
	}
	if en := es["gen_contract_ownerpw_aes128_nocopy.pdf"]; en.Status != jobs.StatusDone {
		t.Errorf("owner-password-only PDF: %+v", en)
	}
	if en := es["gen_contract_truncated50.pdf"]; en.Status != jobs.StatusFailed || !strings.Contains(en.Error, "damaged") {
		t.Errorf("truncated PDF: %+v", en)
	}
}
