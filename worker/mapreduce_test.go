package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

var pageMarkerRE = regexp.MustCompile(`\[page (\d+)\]`)

// mrModel is a fake model for map-reduce tests: map answers carry the
// first page they saw and padding (so that partials overflow the reduce
// budget), reduce answers a digest. It counts map and reduce requests and
// the page markers each map request carried.
type mrModel struct {
	prof llm.Profile
	pad  string
	// onMap, when set, may fail a map request (by its document text).
	onMap func(doc string) error
	// onReduce, when set, runs before each reduce answer.
	onReduce func(doc string)

	mu              sync.Mutex
	maps, reduces   int
	reduceOfDigests int
	facts           int
	pages           map[int]int // page marker -> map requests that carried it
	mapDocs         map[string]int
}

// newMRModel returns a model with this context window whose map answers
// carry facts facts of padRepeats sentences each.
func newMRModel(contextTokens, padRepeats, facts int) *mrModel {
	return &mrModel{prof: llm.Profile{Provider: "openai", Model: "small-context", ContextTokens: contextTokens, MaxOutputTokens: 1024,
		JSONSchema: true, Prices: llm.Prices{InputPerMillion: 1, OutputPerMillion: 2, Currency: "USD"}},
		pad: strings.Repeat("The supplier shall deliver conforming goods on time. ", padRepeats), facts: facts, pages: map[int]int{}, mapDocs: map[string]int{}}
}

func (m *mrModel) Profile() llm.Profile { return m.prof }

func (m *mrModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	doc := req.Parts[len(req.Parts)-1].Text
	switch req.Schema.Name {
	case "chunk_facts":
		if m.onMap != nil {
			if err := m.onMap(doc); err != nil {
				return llm.Response{}, err
			}
		}
		m.mu.Lock()
		m.maps++
		m.mapDocs[doc]++
		first := 0
		for _, mm := range pageMarkerRE.FindAllStringSubmatch(doc, -1) {
			n, _ := strconv.Atoi(mm[1])
			m.pages[n]++
			if first == 0 {
				first = n
			}
		}
		m.mu.Unlock()
		facts := []map[string]any{}
		for i := range m.facts {
			facts = append(facts, map[string]any{"fact": fmt.Sprintf("Fact %d. %s", i, m.pad), "quote": "deliver conforming goods", "pages": []int{max(first, 1)}})
		}
		b, _ := json.Marshal(map[string]any{"facts": facts, "document_type_hint": "supply agreement"})
		return llm.Response{Text: string(b), Model: "small-context", Usage: llm.Usage{InputTokens: 2000, OutputTokens: 600}}, nil
	case "contract_digest":
		if m.onReduce != nil {
			m.onReduce(doc)
		}
		m.mu.Lock()
		m.reduces++
		if strings.Contains(doc, "Partial digest") {
			m.reduceOfDigests++
		}
		m.mu.Unlock()
		b, _ := json.Marshal(map[string]any{"document_type": "supply agreement", "parties": []any{}, "effective_date": emptyFact(), "key_dates": []any{}, "term": emptyFact(),
			"renewal":            map[string]any{"value": "", "automatic": false, "notice": "", "quote": "", "pages": []int{}},
			"termination_rights": emptyFact(), "payment_terms": emptyFact(), "liability_caps": emptyFact(), "indemnities": emptyFact(),
			"confidentiality": emptyFact(), "governing_law_and_venue": emptyFact(), "obligations": []any{},
			"risky_clauses":     []any{map[string]any{"clause": "late delivery", "quote": "deliver conforming goods", "pages": []int{12}}},
			"executive_summary": "A supply agreement. " + m.pad})
		return llm.Response{Text: string(b), Model: "small-context", Usage: llm.Usage{InputTokens: 3000, OutputTokens: 900}}, nil
	}
	return llm.Response{}, fmt.Errorf("unexpected schema %v", req.Schema)
}

func (m *mrModel) counts() (maps, reduces, ofDigests int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maps, m.reduces, m.reduceOfDigests
}

func corpusPDF(t *testing.T, rel string) []byte {
	t.Helper()
	return jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "pdfs"), filepath.FromSlash(rel)))
}

// workKeys lists the objects under the output's work prefix.
func workKeys(t *testing.T, out storage.Store) []string {
	t.Helper()
	var keys []string
	for info, err := range out.List(context.Background(), ".llamapipe/work/", storage.ListOptions{Recursive: true}) {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			t.Fatalf("list work prefix: %v", err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func countSuffix(keys []string, re string) int {
	n := 0
	for _, k := range keys {
		if regexp.MustCompile(re).MatchString(k) {
			n++
		}
	}
	return n
}

// TestLongPDFIsMappedAcrossWorkersAndReducedOnce: a 307-page contract is
// split by pdfcpu into chunk PDFs, mapped by two worker processes and
// reduced in a tree of more than one level; the item is recorded once with
// every stage's tokens and cost, the digest cites the original's pages, and
// the work objects are gone afterwards.
func TestLongPDFIsMappedAcrossWorkersAndReducedOnce(t *testing.T) {
	e := newEnv(t)
	model := newMRModel(12288, 8, 5)
	src, outDir := t.TempDir(), t.TempDir()
	out, _ := e.open(context.Background(), outDir)
	var seenWork []string
	var once sync.Once
	model.onReduce = func(string) { once.Do(func() { seenWork = workKeys(t, out) }) }
	if err := os.WriteFile(filepath.Join(src, "long.pdf"), corpusPDF(t, "long/synthetic_contract_A_enscript.pdf"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir}})
	e.startWorker(model, 2)
	e.startWorker(model, 2)
	es := e.wait(res.BatchID, out, 3*time.Minute)
	if len(es) != 1 {
		t.Fatalf("%d manifest entries, want 1: %+v", len(es), es)
	}
	en := es[0]
	maps, reduces, ofDigests := model.counts()
	t.Logf("%d chunks, %d map requests, %d reduce requests (%d over digests)", en.Chunks, maps, reduces, ofDigests)
	if en.Status != jobs.StatusDone || en.Pages != 307 {
		t.Fatalf("long PDF: %+v", en)
	}
	if en.Chunks < 10 || en.Chunks != maps {
		t.Errorf("chunks %d, map requests %d: want many chunks, one request each", en.Chunks, maps)
	}
	if reduces < 3 || ofDigests < 1 {
		t.Errorf("%d reduces, %d of digests: want a reduce tree of more than one level", reduces, ofDigests)
	}
	if en.InputTokens != maps*2000+reduces*3000 || en.OutputTokens != maps*600+reduces*900 {
		t.Errorf("tokens %d/%d do not add up over %d maps and %d reduces", en.InputTokens, en.OutputTokens, maps, reduces)
	}
	wantCost := float64(en.InputTokens)/1e6*1 + float64(en.OutputTokens)/1e6*2
	if d := en.Cost - wantCost; d > 1e-9 || d < -1e-9 {
		t.Errorf("cost %v, want %v", en.Cost, wantCost)
	}
	// Page markers are the original's: every page once, none beyond 307.
	model.mu.Lock()
	for p := 1; p <= 307; p++ {
		if model.pages[p] != 1 {
			t.Errorf("page %d reached %d map requests, want 1", p, model.pages[p])
		}
	}
	if len(model.pages) != 307 {
		t.Errorf("%d distinct pages in map requests, want 307", len(model.pages))
	}
	model.mu.Unlock()
	if countSuffix(seenWork, `chunk-\d{4}\.pdf$`) != en.Chunks || countSuffix(seenWork, `map-\d{4}\.json$`) != en.Chunks {
		t.Errorf("work objects at the first reduce: %v; want %d chunk PDFs and %d map answers", seenWork, en.Chunks, en.Chunks)
	}
	if left := workKeys(t, out); len(left) != 0 {
		t.Errorf("work objects left after success: %v", left)
	}
	digest := readJSON(t, out, en.Results[0])
	if digest["document_type"] != "supply agreement" || digest["meta"].(map[string]any)["requests"].(float64) != float64(maps+reduces) {
		t.Errorf("digest %v", digest)
	}
	if _, err := out.Stat(context.Background(), en.Results[1]); err != nil || !strings.HasSuffix(en.Results[1], ".summary.md") {
		t.Errorf("markdown digest %v: %v", en.Results, err)
	}
}

// TestUnsplittablePDFIsMappedFromTheOriginal: a PDF pdfcpu cannot read (a
// wrong startxref that PDFium repairs) is still summarized: its map tasks
// read the page texts kept while planning (no chunk PDFs to read).
func TestUnsplittablePDFIsMappedFromTheOriginal(t *testing.T) {
	e := newEnv(t)
	model := newMRModel(4096, 2, 3) // a 1,024-token budget
	src, outDir := t.TempDir(), t.TempDir()
	out, _ := e.open(context.Background(), outDir)
	var seenWork []string
	var once sync.Once
	model.onReduce = func(string) { once.Do(func() { seenWork = workKeys(t, out) }) }
	if err := os.WriteFile(filepath.Join(src, "broken.pdf"), corpusPDF(t, "broken/gen_contract_bad_startxref.pdf"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir}})
	e.startWorker(model, 2)
	es := e.wait(res.BatchID, out, 2*time.Minute)
	if len(es) != 1 || es[0].Status != jobs.StatusDone || es[0].Pages != 18 || es[0].Chunks < 2 {
		t.Fatalf("entries %+v", es)
	}
	if n := countSuffix(seenWork, `chunk-\d{4}\.pdf$`); n != 0 || countSuffix(seenWork, `map-\d{4}\.json$`) != es[0].Chunks ||
		countSuffix(seenWork, `chunk-\d{4}\.pages\.json$`) != es[0].Chunks {
		t.Errorf("work objects %v: want no chunk PDFs (not split), and one kept page text and one map answer per chunk", seenWork)
	}
	model.mu.Lock()
	defer model.mu.Unlock()
	for p := 1; p <= 18; p++ {
		if model.pages[p] == 0 {
			t.Errorf("page %d reached no map request", p)
		}
	}
	if len(model.pages) != 18 {
		t.Errorf("pages seen %v, want 1-18", model.pages)
	}
}

// direct drives a worker's handlers by hand (no asynq server), so a test
// decides which task runs when, and how often.
type direct struct {
	t       *testing.T
	e       *env
	w       *worker.Worker
	h       asynq.Handler
	insp    *asynq.Inspector
	batch   string
	item    jobs.ItemPayload
	out     storage.Store
	model   *mrModel
	started bool
}

// newDirect creates a one-item batch of a long TXT document (far over the
// 1,024-token budget) and a worker whose handlers the test calls.
func newDirect(t *testing.T) *direct {
	e := newEnv(t)
	ctx := context.Background()
	srcDir, outDir := t.TempDir(), t.TempDir()
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "Clause %d. The supplier shall deliver %d conforming units to the buyer within thirty days of each order.\n\n", i+1, 10*i+5)
	}
	if err := os.WriteFile(filepath.Join(srcDir, "long.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ := e.open(ctx, srcDir)
	info, err := src.Stat(ctx, "long.txt")
	if err != nil {
		t.Fatal(err)
	}
	d := &direct{t: t, e: e, batch: "mr1", model: newMRModel(4096, 1, 3)}
	b := jobs.Batch{ID: d.batch, Created: time.Now(), Spec: jobs.Spec{Sources: []string{srcDir}, Task: jobs.TaskAuto, Out: outDir, Queue: jobs.QueueDefault}}
	if err := e.tracker.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tracker.Seal(ctx, d.batch, 1); err != nil {
		t.Fatal(err)
	}
	d.item = jobs.ItemPayload{Batch: d.batch, Item: jobs.ItemID(srcDir, "long.txt"),
		Source: jobs.Ref{Location: srcDir, Key: "long.txt", ETag: info.ETag, Size: info.Size},
		Type:   "txt", Kind: jobs.KindDocument, Task: jobs.TaskSummarize, Out: outDir, ResultBase: "long.txt", Fingerprint: "fp1"}
	d.out, _ = e.open(ctx, outDir)
	d.w, err = worker.New(worker.Config{Redis: jobstest.ConnOpt(t, e.url), Tracker: e.tracker, Open: e.open, Model: d.model, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.w.Close() })
	d.h = d.w.Handler()
	d.insp = asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	t.Cleanup(func() { _ = d.insp.Close() })
	return d
}

// stage1 runs the item task and returns the map tasks it enqueued, by index.
func (d *direct) stage1() []*asynq.TaskInfo {
	d.t.Helper()
	task, err := jobs.NewItemTask(d.item, jobs.QueueDefault, 3)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.h.ProcessTask(context.Background(), task); err != nil {
		d.t.Fatalf("item task: %v", err)
	}
	if done, _ := d.e.tracker.Recorded(context.Background(), d.batch, d.item.Item, d.item.Seq); done {
		d.t.Fatal("the item task recorded a long document itself")
	}
	maps := d.pending(chunktask.TypeMap)
	if len(maps) < 3 {
		d.t.Fatalf("%d map tasks enqueued, want several", len(maps))
	}
	return maps
}

// pending lists the queued tasks of a type, sorted by task ID.
func (d *direct) pending(typ string) []*asynq.TaskInfo {
	d.t.Helper()
	all, err := d.insp.ListPendingTasks(jobs.QueueDefault, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		d.t.Fatal(err)
	}
	var out []*asynq.TaskInfo
	for _, ti := range all {
		if ti.Type == typ {
			out = append(out, ti)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return len(out[i].ID) < len(out[j].ID) || len(out[i].ID) == len(out[j].ID) && out[i].ID < out[j].ID
	})
	return out
}

func (d *direct) run(ti *asynq.TaskInfo) error {
	return d.h.ProcessTask(context.Background(), asynq.NewTask(ti.Type, ti.Payload))
}

func (d *direct) entry() (jobs.Entry, bool) {
	d.t.Helper()
	es, err := d.e.tracker.Entries(context.Background(), d.batch)
	if err != nil {
		d.t.Fatal(err)
	}
	if len(es) > 1 {
		d.t.Fatalf("%d entries for one item", len(es))
	}
	if len(es) == 0 {
		return jobs.Entry{}, false
	}
	return es[0], true
}

// TestDuplicateMapDeliveriesNeitherAskTwiceNorReduceTwice: a map task
// delivered twice (before and after the fan-in completed) asks the model
// once and leaves exactly one reduce task; a duplicate reduce records
// nothing more.
func TestDuplicateMapDeliveriesNeitherAskTwiceNorReduceTwice(t *testing.T) {
	d := newDirect(t)
	ctx := context.Background()
	maps := d.stage1()
	n := len(maps)
	for i, ti := range maps {
		if want := chunktask.MapTaskID(d.batch, d.item.Item, i+1); ti.ID != want {
			t.Fatalf("map task %d has ID %q, want %q", i+1, ti.ID, want)
		}
	}
	// The item task delivered again: the same map tasks, no more.
	task, _ := jobs.NewItemTask(d.item, jobs.QueueDefault, 3)
	if err := d.h.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if again := d.pending(chunktask.TypeMap); len(again) != n {
		t.Fatalf("%d map tasks after a duplicate item delivery, want %d", len(again), n)
	}
	if keys := workKeys(t, d.out); countSuffix(keys, `chunk-\d{4}\.txt$`) != n {
		t.Fatalf("work objects %v: want %d text chunks", keys, n)
	}
	for i, ti := range maps {
		if err := d.run(ti); err != nil {
			t.Fatalf("map %d: %v", i+1, err)
		}
		if i == 0 { // a duplicate delivery of the first map
			if err := d.run(ti); err != nil {
				t.Fatalf("map 1 again: %v", err)
			}
		}
		if r := d.pending(chunktask.TypeReduce); (i < n-1) != (len(r) == 0) {
			t.Fatalf("after map %d of %d: %d reduce tasks", i+1, n, len(r))
		}
	}
	if err := d.run(maps[n-1]); err != nil { // the last map again, after the fan-in
		t.Fatal(err)
	}
	mapsAsked, _, _ := d.model.counts()
	if mapsAsked != n {
		t.Errorf("%d map requests for %d chunks, want one each", mapsAsked, n)
	}
	reduces := d.pending(chunktask.TypeReduce)
	if len(reduces) != 1 || reduces[0].ID != chunktask.ReduceTaskID(d.batch, d.item.Item) {
		t.Fatalf("reduce tasks %+v, want exactly one", reduces)
	}
	if _, ok := d.entry(); ok {
		t.Fatal("item recorded before its reduce ran")
	}
	if err := d.run(reduces[0]); err != nil {
		t.Fatal(err)
	}
	en, ok := d.entry()
	if !ok || en.Status != jobs.StatusDone || en.Chunks != n {
		t.Fatalf("entry %+v", en)
	}
	_, reducesAsked, _ := d.model.counts()
	if en.InputTokens != n*2000+reducesAsked*3000 {
		t.Errorf("input tokens %d over %d maps and %d reduces", en.InputTokens, n, reducesAsked)
	}
	if left := workKeys(t, d.out); len(left) != 0 {
		t.Errorf("work objects left: %v", left)
	}
	if _, err := d.out.Stat(ctx, fingerprint.Key(d.item.ResultBase, d.item.Task, "fp1")); err != nil {
		t.Errorf("fingerprint marker: %v", err)
	}
	if m, _ := d.e.tracker.Mapped(ctx, d.batch, d.item.Item); m != 0 {
		t.Errorf("%d mapped chunks left in Redis", m)
	}
	// The reduce delivered again: nothing asked, nothing recorded twice.
	if err := d.run(reduces[0]); err != nil {
		t.Fatal(err)
	}
	if _, r2, _ := d.model.counts(); r2 != reducesAsked {
		t.Errorf("a duplicate reduce asked the model %d more times", r2-reducesAsked)
	}
	if c, _ := d.e.tracker.Counts(ctx, d.batch); c.Done != 1 || c.InputTokens != int64(en.InputTokens) {
		t.Errorf("counts after a duplicate reduce: %+v", c)
	}
}

// TestPermanentMapFailureFailsTheItemOnce: a chunk the model refuses ends
// the item as failed, naming the chunk; the item's remaining map tasks
// stop without calling the model, and no reduce is enqueued.
func TestPermanentMapFailureFailsTheItemOnce(t *testing.T) {
	d := newDirect(t)
	maps := d.stage1()
	d.model.onMap = func(doc string) error {
		if strings.Contains(doc, "Clause 1.") {
			return &llm.Error{Kind: llm.Permanent, Status: 400, Message: "content policy refused this text"}
		}
		return nil
	}
	if err := d.run(maps[1]); err != nil { // chunk 2 maps fine
		t.Fatal(err)
	}
	err := d.run(maps[0]) // chunk 1 is refused
	if !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("refused chunk returned %v, want a SkipRetry error", err)
	}
	en, ok := d.entry()
	want := fmt.Sprintf("chunk 1 of %d: model refused the request", len(maps))
	if !ok || en.Status != jobs.StatusFailed || !strings.Contains(en.Error, want) || !strings.Contains(en.Error, "content policy") {
		t.Fatalf("entry %+v, want failed with %q", en, want)
	}
	before, _, _ := d.model.counts()
	for _, ti := range maps[2:] {
		if err := d.run(ti); err != nil {
			t.Fatal(err)
		}
	}
	if after, _, _ := d.model.counts(); after != before {
		t.Errorf("%d model calls after the item failed", after-before)
	}
	if r := d.pending(chunktask.TypeReduce); len(r) != 0 {
		t.Errorf("reduce enqueued for a failed item: %+v", r)
	}
	if c, _ := d.e.tracker.Counts(context.Background(), d.batch); c.Failed != 1 || c.Done != 0 {
		t.Errorf("counts %+v", c)
	}
	// The work objects are kept for inspection.
	if len(workKeys(t, d.out)) == 0 {
		t.Error("work objects removed after a failure")
	}
}

// TestMapOfCancelledBatchAndPanickingMap: a map of a cancelled batch records
// the item as cancelled without asking; a panicking map becomes a failed
// attempt, not a dead process.
func TestMapOfCancelledBatchAndPanickingMap(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) {
		d := newDirect(t)
		maps := d.stage1()
		if _, err := d.e.tracker.Cancel(context.Background(), d.batch, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := d.run(maps[0]); err != nil {
			t.Fatal(err)
		}
		if en, ok := d.entry(); !ok || en.Status != jobs.StatusCancelled {
			t.Fatalf("entry %+v", en)
		}
		if n, _, _ := d.model.counts(); n != 0 {
			t.Errorf("%d map requests in a cancelled batch", n)
		}
	})
	t.Run("panic", func(t *testing.T) {
		d := newDirect(t)
		maps := d.stage1()
		d.model.onMap = func(string) error { panic("boom") }
		err := d.run(maps[2])
		if err == nil || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("panicking map returned %v", err)
		}
		// Without asynq's retry context this was the last attempt.
		if en, ok := d.entry(); !ok || en.Status != jobs.StatusFailed || !strings.Contains(en.Error, "chunk 3 of") || !strings.Contains(en.Error, "panic") {
			t.Fatalf("entry %+v", en)
		}
	})
}

// TestArchivedMapTaskIsSweptIntoTheManifest: a map task archived without
// its handler recording the item (a worker that died on it every time)
// ends the item as failed, naming the chunk, so the batch completes.
func TestArchivedMapTaskIsSweptIntoTheManifest(t *testing.T) {
	d := newDirect(t)
	maps := d.stage1()
	if err := d.insp.ArchiveTask(jobs.QueueDefault, maps[1].ID); err != nil {
		t.Fatal(err)
	}
	d.e.runWorker(worker.Config{Model: d.model, Concurrency: 2, SweepInterval: 100 * time.Millisecond}, nil)
	es := d.e.wait(d.batch, d.out, time.Minute)
	if len(es) != 1 || es[0].Status != jobs.StatusFailed || !strings.Contains(es[0].Error, fmt.Sprintf("chunk 2 of %d", len(maps))) ||
		!strings.Contains(es[0].Error, "archived") {
		t.Fatalf("entries %+v", es)
	}
}

// TestLongDocumentThroughAFaultyModelServer: a long document's map and
// reduce tasks, against an OpenAI-compatible fake server that answers many
// requests with 429 or 500, retry until the item is done — recorded once,
// with exactly the tokens of the answers that were used.
func TestLongDocumentThroughAFaultyModelServer(t *testing.T) {
	e := newEnv(t)
	fs := fakeserver.New(fakeserver.Options{Rate429: 0.2, Rate500: 0.15, RetryAfter: time.Second, Seed: 9})
	hs := httptest.NewServer(fs)
	t.Cleanup(func() { fs.Close(); hs.Close() })
	model, err := openai.New(openai.Options{Profile: llm.Profile{Provider: "openai", BaseURL: hs.URL + "/v1", Model: fakeserver.DefaultModel,
		ContextTokens: 4096, MaxOutputTokens: 1024, JSONSchema: true, TextOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	src, outDir := t.TempDir(), t.TempDir()
	var sb strings.Builder
	for i := range 150 {
		fmt.Fprintf(&sb, "Clause %d. The licensee pays a royalty of %d percent on net sales each quarter.\n\n", i+1, i%9+1)
	}
	if err := os.WriteFile(filepath.Join(src, "licence.md"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, MaxRetry: 8}})
	e.startWorker(model, 2)
	e.startWorker(model, 2)
	out, _ := e.open(context.Background(), outDir)
	es := e.wait(res.BatchID, out, 2*time.Minute)
	st := fs.Stats()
	t.Logf("fake server: %+v", st)
	if len(es) != 1 || es[0].Status != jobs.StatusDone || es[0].Chunks < 3 {
		t.Fatalf("entries %+v", es)
	}
	if st.RateLimited == 0 || st.ServerErrors == 0 {
		t.Fatalf("the run met no faults: %+v", st)
	}
	if int64(es[0].InputTokens) != st.PromptTokens || int64(es[0].OutputTokens) != st.CompletionTokens {
		t.Errorf("entry tokens %d/%d, server answered %d/%d", es[0].InputTokens, es[0].OutputTokens, st.PromptTokens, st.CompletionTokens)
	}
	if digest := readJSON(t, out, es[0].Results[0]); digest["meta"].(map[string]any)["requests"].(float64) != float64(st.OK) {
		t.Errorf("digest meta %v, server answered %d requests", digest["meta"], st.OK)
	}
	if left := workKeys(t, out); len(left) != 0 {
		t.Errorf("work objects left: %v", left)
	}
}
