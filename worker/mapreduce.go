package worker

// A long document is summarized across workers in three stages:
//
//  1. its item task (distribute) extracts the text, plans chunks by the
//     measured tokens, writes one chunk object per chunk under the batch's
//     work prefix in the output location (a chunk PDF cut by pdfcpu, or the
//     chunk's text) and enqueues one map task per chunk; it records nothing;
//  2. each map task (mapHandler) asks the model for its chunk's facts,
//     writes them as map-NNNN.json next to the chunk, adds its index to the
//     item's set of mapped chunks in Redis, and the one that completes the
//     set enqueues the reduce (deterministic task ID);
//  3. the reduce task (reduceHandler) reduces the map answers in a tree,
//     writes the digest, records the item once with the tokens and cost of
//     every stage, and deletes the work objects.
//
// A map that fails for good records the item as failed, naming its chunk;
// the item's other map tasks then stop without calling the model.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest/pdfsplit"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// distribute continues a document that does not fit one request in map
// tasks: it plans the chunks (PDF page ranges whose measured text fits the
// budget, or text chunks), writes them under the work prefix, enqueues one
// map task per chunk and returns an outcome that is continued elsewhere.
func (w *Worker) distribute(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, data []byte, out storage.Store,
	doc docContent, budget int, start time.Time) (outcome, error) {
	o := outcome{pages: doc.pages, continued: true}
	base := jobs.MapPayload{Item: p, DocPages: doc.pages, StartedMS: start.UnixMilli()}
	var chunks []jobs.MapPayload
	var objects [][]byte
	if p.Type == "pdf" {
		ranges := w.planPages(doc, budget)
		for _, r := range ranges {
			mp := base
			mp.Pages = &jobs.PageRange{First: r.First, Last: r.Last}
			chunks = append(chunks, mp)
		}
		// pdfcpu counts pages from 1 of the whole file.
		split, err := pdfsplit.Split(data, w.password(p.Source), ranges)
		if err != nil {
			// The map tasks read their pages from the original instead.
			log.InfoContext(ctx, "PDF not split: chunks read page ranges of the original", "error", err.Error())
		} else {
			objects = split
		}
	} else {
		for _, c := range chunk.Split(doc.text, budget, 200) {
			chunks = append(chunks, base)
			objects = append(objects, []byte(c.Text))
		}
	}
	n := len(chunks)
	if n == 0 {
		return o, permanent("no text found: the document is blank", nil)
	}
	o.chunks = n
	queue, _ := asynq.GetQueueName(ctx)
	queue = cmp.Or(queue, jobs.QueueDefault)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = 3
	}
	for i := range chunks {
		mp := &chunks[i]
		mp.Index, mp.Count = i+1, n
		if objects != nil {
			ext, ctype := "txt", "text/plain; charset=utf-8"
			if p.Type == "pdf" {
				ext, ctype = "pdf", "application/pdf"
			}
			mp.Chunk = jobs.ChunkKey(p.Batch, p.Item, mp.Index, ext)
			if err := out.Put(ctx, mp.Chunk, bytes.NewReader(objects[i]), int64(len(objects[i])), ctype); err != nil {
				return o, fmt.Errorf("write %s: %w", mp.Chunk, err)
			}
		}
	}
	if err := w.checkCancelled(ctx, p); err != nil {
		return o, err
	}
	for _, mp := range chunks {
		t, err := jobs.NewMapTask(mp, queue, maxRetry)
		if err != nil {
			return o, err
		}
		if _, err := w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return o, fmt.Errorf("enqueue %s: %w", mp.ChunkLabel(), err)
		}
	}
	mapped, err := w.cfg.Tracker.Mapped(ctx, p.Batch, p.Item)
	if err == nil {
		w.progress(ctx, p, "map", mapped, n)
	}
	log.InfoContext(ctx, "document continued in map tasks", "chunks", n, "pages", doc.pages, "split", objects != nil)
	return o, nil
}

// planPages groups the document's pages into ranges whose measured text
// fits the budget; a page without text that the model will see as an image
// weighs a share of the budget, so that a range carries at most as many
// images as one request takes.
func (w *Worker) planPages(doc docContent, budget int) []pdfsplit.Range {
	perImage := budget / min(max(w.cfg.Model.Profile().MaxImages, 1), 4)
	scanned := make(map[int]bool, len(doc.scanned))
	for _, sp := range doc.scanned {
		scanned[sp.page] = true
	}
	tokens := make([]int, len(doc.pageTokens))
	for i, t := range doc.pageTokens {
		tokens[i] = t
		if scanned[doc.first+i] {
			tokens[i] = perImage
		}
	}
	ranges := pdfsplit.Plan(tokens, budget)
	for i := range ranges { // Plan counts from 1; the pages read start at doc.first
		ranges[i].First += doc.first - 1
		ranges[i].Last += doc.first - 1
	}
	return ranges
}

// mapResult is what a map task writes as map-NNNN.json: its chunk's
// partial results and what they cost.
type mapResult struct {
	V            int          `json:"v"`
	Index        int          `json:"index"`
	Count        int          `json:"count"`
	Partials     []mapPartial `json:"partials"`
	InputTokens  int          `json:"input_tokens"`
	OutputTokens int          `json:"output_tokens"`
	Cost         float64      `json:"cost"`
	Currency     string       `json:"currency,omitempty"`
	Model        string       `json:"model,omitempty"`
	Requests     int          `json:"requests"`
	Estimated    bool         `json:"tokens_estimated,omitempty"`
}

// mapPartial is one map answer (a chunk too large for one request has
// several).
type mapPartial struct {
	FirstPage int            `json:"first_page"`
	LastPage  int            `json:"last_page"`
	Facts     map[string]any `json:"facts"`
}

// guard runs fn, turning a panic into an error (the task is then recorded
// and retried like any other failure; the process lives on).
func guard(ctx context.Context, log *slog.Logger, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (panic: %v); please report it", r)
			log.ErrorContext(ctx, "panic while processing item", "panic", fmt.Sprint(r))
		}
	}()
	return fn()
}

// stopped returns the batch's stop message as a permanent error, or
// errCancelled, or nil when the item may go on.
func (w *Worker) stopped(ctx context.Context, p jobs.ItemPayload) error {
	if msg, err := w.cfg.Tracker.Fatal(ctx, p.Batch); err != nil {
		return err
	} else if msg != "" {
		return permanent(msg, nil)
	}
	return w.checkCancelled(ctx, p)
}

// mapHandler runs one chunk's map task. Its success records nothing (the
// reduce records the item); a final failure records the item as failed,
// naming the chunk.
func (w *Worker) mapHandler() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		mp, err := jobs.DecodeMap(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		p := mp.Item
		taskID, _ := asynq.GetTaskID(ctx)
		log := w.log.With("batch_id", p.Batch, "source", p.Source.URL(), "task_id", taskID, "chunk", mp.Index)
		if done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item); err != nil {
			return err
		} else if done {
			log.InfoContext(ctx, "item already recorded: map skipped")
			return w.finalizeIfComplete(ctx, p.Batch)
		}
		start := startTime(mp.StartedMS, w.now())
		ctx, err = w.admit(ctx, p)
		if err == nil {
			if err = guard(ctx, log, func() error { return w.mapChunk(ctx, log, mp) }); err != nil {
				err = chunkError(mp, err)
			}
		}
		o := outcome{continued: true}
		if err != nil {
			o = outcome{pages: mp.DocPages, chunks: mp.Count}
		}
		return w.finish(ctx, log, p, o, start, err)
	})
}

// chunkError names the chunk in a map failure's reason ("chunk 3 of 12
// (pages 41–60): ...").
func chunkError(mp jobs.MapPayload, err error) error {
	err = classify(err)
	var pe *PermanentError
	var fe *FatalError
	switch {
	case errors.Is(err, errCancelled), errors.As(err, &fe):
		return err
	case errors.As(err, &pe):
		return permanent(mp.ChunkLabel()+": "+pe.Error(), pe)
	}
	return fmt.Errorf("%s: %w", mp.ChunkLabel(), err)
}

func startTime(ms int64, now time.Time) time.Time {
	if ms <= 0 {
		return now
	}
	return time.UnixMilli(ms)
}

// mapChunk maps one chunk unless its answer is already written (a
// duplicate delivery, or a retry after the write), then counts it in.
func (w *Worker) mapChunk(ctx context.Context, log *slog.Logger, mp jobs.MapPayload) error {
	p := mp.Item
	out, err := w.stores.get(ctx, p.Out)
	if err != nil {
		return err
	}
	key := jobs.MapResultKey(p.Batch, p.Item, mp.Index)
	switch _, err := out.Stat(ctx, key); {
	case err == nil:
		log.InfoContext(ctx, "chunk already mapped: model not asked again")
	case errors.Is(err, fs.ErrNotExist):
		res, err := w.mapAsk(ctx, log, mp, out)
		if err != nil {
			return err
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		if err := out.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
	default:
		return fmt.Errorf("stat %s: %w", key, err)
	}
	n, err := w.cfg.Tracker.MarkMapped(ctx, p.Batch, p.Item, mp.Index)
	if err != nil {
		return err
	}
	perr := w.cfg.Tracker.SetProgressUnlessRecorded(ctx, p.Batch, jobs.Progress{Item: p.Item, Source: p.Source.URL(), Stage: "map",
		Done: n, Total: mp.Count, Updated: w.now().UTC()})
	if perr != nil {
		log.DebugContext(ctx, "progress not recorded", "error", perr.Error())
	}
	if n < mp.Count {
		return nil
	}
	queue, _ := asynq.GetQueueName(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	t, err := jobs.NewReduceTask(jobs.ReducePayload{Item: p, Count: mp.Count, DocPages: mp.DocPages, StartedMS: mp.StartedMS},
		cmp.Or(queue, jobs.QueueDefault), maxRetry)
	if err != nil {
		return err
	}
	if _, err := w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue reduce: %w", err)
	}
	log.InfoContext(ctx, "every chunk mapped: reduce enqueued", "chunks", mp.Count)
	return nil
}

// mapAsk reads the chunk and asks the map prompt for each of its units:
// its text (in pieces when over the budget) and its pages without text,
// in groups the model takes as images.
func (w *Worker) mapAsk(ctx context.Context, log *slog.Logger, mp jobs.MapPayload, out storage.Store) (mapResult, error) {
	p := mp.Item
	res := mapResult{V: 1, Index: mp.Index, Count: mp.Count, Partials: []mapPartial{}}
	doc, err := w.chunkContent(ctx, log, mp, out)
	if err != nil {
		return res, err
	}
	if err := w.checkCancelled(ctx, p); err != nil {
		return res, err
	}
	mapT, err := w.cfg.Prompts.Load(prompts.SummaryMap)
	if err != nil {
		return res, fmt.Errorf("map prompt: %w", err)
	}
	var o outcome
	s := &summarizer{w: w, log: log, p: p, out: out, o: &o, title: path.Base(p.Source.Key), lang: language(p.Options),
		pages: mp.DocPages, budget: w.textBudget(p)}
	if len(doc.scanned) > 0 && w.cfg.Model.Profile().MaxImages == 0 {
		doc.scanned = nil // left out, as in the item task
	}
	ask := func(text string, images []scannedPage) error {
		first, last := pageSpan(text)
		if len(images) > 0 {
			first, last = images[0].page, images[len(images)-1].page
		}
		user, err := mapT.Render(prompts.ChunkData{Language: s.lang, Chunk: mp.Index, Chunks: mp.Count, FirstPage: first, LastPage: last})
		if err != nil {
			return fmt.Errorf("map prompt: %w", err)
		}
		req := w.docRequest(mapT, user, p, text)
		if len(images) > 0 {
			req.Parts = []llm.Part{{Text: user}}
			for _, im := range images {
				req.Parts = append(req.Parts, llm.Part{Text: prompts.PageMarker(im.page), Document: true},
					llm.Part{Image: &llm.Image{MIME: "image/jpeg", Data: im.jpeg, Width: im.width, Height: im.height}})
			}
		}
		a, err := s.ask(ctx, mapT, req)
		if err != nil {
			return err
		}
		res.Partials = append(res.Partials, mapPartial{FirstPage: first, LastPage: last, Facts: a.doc})
		return nil
	}
	if strings.TrimSpace(stripMarkers(doc.text)) != "" {
		texts := []string{doc.text}
		if chunk.EstimateTokens(doc.text) > s.budget {
			texts = texts[:0]
			for _, c := range chunk.Split(doc.text, s.budget, 200) {
				texts = append(texts, c.Text)
			}
		}
		for _, text := range texts {
			err := ask(text, nil)
			if llm.KindOf(err) == llm.TooLarge {
				// Too large for the provider: this text in halves, once.
				for _, half := range chunk.Split(text, max(chunk.EstimateTokens(text)/2, 256), 100) {
					if err = ask(half.Text, nil); err != nil {
						break
					}
				}
			}
			if err != nil {
				return res, err
			}
		}
	}
	for _, g := range groupPages(doc.scanned, w.cfg.Model.Profile().MaxImages) {
		if err := ask("", g); err != nil {
			return res, fmt.Errorf("scanned pages %d-%d: %w", g[0].page, g[len(g)-1].page, err)
		}
	}
	res.InputTokens, res.OutputTokens, res.Cost, res.Currency, res.Model = o.inputTokens, o.outputTokens, o.cost, o.currency, o.model
	res.Requests, res.Estimated = s.requests, s.estimated
	return res, nil
}

// chunkContent reads one chunk: its text object, its chunk PDF (page
// numbers shifted to the original's), or its page range of the original.
// Pages without text are rendered.
func (w *Worker) chunkContent(ctx context.Context, log *slog.Logger, mp jobs.MapPayload, out storage.Store) (docContent, error) {
	p := mp.Item
	t0 := time.Now()
	defer func() { w.cfg.Metrics.TextExtracted(p.Type, time.Since(t0)) }()
	if mp.Chunk != "" {
		data, err := w.read(ctx, out, jobs.Ref{Location: p.Out, Key: mp.Chunk})
		if errors.Is(err, fs.ErrNotExist) {
			return docContent{}, permanent(fmt.Sprintf("chunk object %s is missing from the work prefix", mp.Chunk), err)
		}
		if err != nil {
			return docContent{}, err
		}
		if mp.Pages == nil {
			text, err := extract.Text(data)
			return docContent{text: text}, extractError(err)
		}
		want := mp.Pages.Last - mp.Pages.First + 1
		d, err := w.pdfContent(ctx, p, data, pdfRead{offset: mp.Pages.First - 1, render: true})
		if err == nil && d.pages == want {
			return d, nil
		}
		// A chunk PDF PDFium cannot read as cut: read the original instead.
		reason := fmt.Sprintf("%d pages, want %d", d.pages, want)
		if err != nil {
			reason = err.Error()
		}
		log.InfoContext(ctx, "chunk PDF unusable: reading the original's pages", "reason", reason)
	}
	src, err := w.stores.get(ctx, p.Source.Location)
	if err != nil {
		return docContent{}, err
	}
	data, err := w.read(ctx, src, p.Source)
	if err != nil {
		return docContent{}, err
	}
	return w.pdfContent(ctx, p, data, pdfRead{password: w.password(p.Source), first: mp.Pages.First, last: mp.Pages.Last, render: true})
}

// reduceHandler runs a document's reduce task: it records the item.
func (w *Worker) reduceHandler() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		rp, err := jobs.DecodeReduce(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		p := rp.Item
		taskID, _ := asynq.GetTaskID(ctx)
		log := w.log.With("batch_id", p.Batch, "source", p.Source.URL(), "task_id", taskID)
		if done, err := w.cfg.Tracker.Recorded(ctx, p.Batch, p.Item); err != nil {
			return err
		} else if done {
			log.InfoContext(ctx, "item already recorded: duplicate reduce ignored")
			return w.finalizeIfComplete(ctx, p.Batch)
		}
		start := startTime(rp.StartedMS, w.now())
		o := outcome{pages: rp.DocPages, chunks: rp.Count}
		err = guard(ctx, log, func() error {
			var err error
			if ctx, err = w.admit(ctx, p); err != nil {
				return err
			}
			return w.reduceItem(ctx, log, rp, &o)
		})
		if ferr := w.finish(ctx, log, p, o, start, err); ferr != nil || err != nil {
			return ferr // work objects are kept on failure, for inspection
		}
		w.removeWork(ctx, log, p)
		return nil
	})
}

// reduceItem reads every map answer, reduces them in a tree, writes the
// digest and the fingerprint marker, and sums what every stage cost into o.
func (w *Worker) reduceItem(ctx context.Context, log *slog.Logger, rp jobs.ReducePayload, o *outcome) error {
	p := rp.Item
	out, err := w.stores.get(ctx, p.Out)
	if err != nil {
		return err
	}
	s := &summarizer{w: w, log: log, p: p, out: out, o: o, title: path.Base(p.Source.Key), lang: language(p.Options),
		pages: rp.DocPages, budget: w.textBudget(p)}
	var partials []string
	for i := 1; i <= rp.Count; i++ {
		key := jobs.MapResultKey(p.Batch, p.Item, i)
		res, err := readMapResult(ctx, out, key)
		if errors.Is(err, fs.ErrNotExist) {
			return permanent(fmt.Sprintf("the map answer of chunk %d of %d (%s) is missing", i, rp.Count, key), err)
		}
		if err != nil {
			return err
		}
		o.inputTokens += res.InputTokens
		o.outputTokens += res.OutputTokens
		o.cost += res.Cost
		o.currency = cmp.Or(res.Currency, o.currency)
		o.model = cmp.Or(res.Model, o.model)
		s.requests += res.Requests
		s.estimated = s.estimated || res.Estimated
		for _, pt := range res.Partials {
			partials = append(partials, fmt.Sprintf("Partial result %d (pages %d-%d):\n%s", len(partials)+1, pt.FirstPage, pt.LastPage, compactJSON(pt.Facts)))
		}
	}
	if len(partials) == 0 {
		return permanent("no text found: the document is blank", nil)
	}
	log.InfoContext(ctx, "document mapped", "chunks", rp.Count, "partials", len(partials))
	tmpl, final, err := s.reduce(ctx, partials)
	if err != nil {
		return err
	}
	if err := s.writeDigest(ctx, tmpl, final); err != nil {
		return err
	}
	return w.writeMarker(ctx, out, p)
}

func readMapResult(ctx context.Context, out storage.Store, key string) (mapResult, error) {
	var res mapResult
	rc, err := out.Get(ctx, key, nil)
	if err != nil {
		return res, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return res, fmt.Errorf("read %s: %w", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return res, permanent(fmt.Sprintf("the map answer %s is not valid JSON: %v", key, err), err)
	}
	return res, nil
}

// removeWork deletes an item's work objects and its set of mapped chunks,
// best effort: the item is recorded already.
func (w *Worker) removeWork(ctx context.Context, log *slog.Logger, p jobs.ItemPayload) {
	out, err := w.stores.get(ctx, p.Out)
	if err == nil {
		var keys []string
		for info, lerr := range out.List(ctx, jobs.WorkPrefix(p.Batch, p.Item), storage.ListOptions{Recursive: true}) {
			if lerr != nil {
				err = lerr
				break
			}
			keys = append(keys, info.Key)
		}
		for _, k := range keys {
			err = errors.Join(err, out.Delete(ctx, k))
		}
	}
	err = errors.Join(err, w.cfg.Tracker.ClearMapped(ctx, p.Batch, p.Item))
	if err != nil {
		log.WarnContext(ctx, "work objects not removed", "prefix", jobs.WorkPrefix(p.Batch, p.Item), "error", err.Error())
	}
}
