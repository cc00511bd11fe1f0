package document

// A long document is summarized across workers in three stages:
//
//  1. its item task (Summarize, then distribute) extracts the text, plans
//     chunks by the measured tokens, writes one chunk object per chunk under
//     the batch's work prefix in the output location (a chunk PDF cut by
//     pdfcpu, or the chunk's text) and hands back one map payload per chunk,
//     which the worker enqueues; it records nothing;
//  2. each map task (Map) asks the model for its chunk's facts and writes
//     them as map-NNNN.json next to the chunk; the worker adds its index to
//     the item's set of mapped chunks in Redis, and the one that completes
//     the set enqueues the reduce (deterministic task ID);
//  3. the reduce task (Reduce) reduces the map answers in a tree and writes
//     the digest; the worker records the item once with the tokens and cost
//     of every stage, and deletes the work objects (RemoveWork).
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
	"io/fs"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/pdfsplit"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// distribute continues a document that does not fit one request in map
// tasks: it plans the chunks (PDF page ranges whose measured text fits the
// budget, or text chunks), writes them under the work prefix and returns an
// outcome that is continued elsewhere, with one map payload per chunk.
func (s *Stage) distribute(ctx context.Context, it Item, data []byte, doc docContent, budget int, start time.Time) (stage.Outcome, []chunktask.MapPayload, error) {
	p, log, out := it.Payload, it.Log, it.Out
	o := stage.Outcome{Pages: doc.pages, Continued: true}
	base := chunktask.MapPayload{Item: p, DocPages: doc.pages, StartedMS: start.UnixMilli()}
	var chunks []chunktask.MapPayload
	var objects [][]byte
	var ranges []pdfsplit.Range
	if p.Type == jobs.FilePDF {
		ranges = planPages(doc, budget, it.Model.Profile().MaxImages)
		for _, r := range ranges {
			mp := base
			mp.Pages = &jobs.PageRange{First: r.First, Last: r.Last}
			chunks = append(chunks, mp)
		}
		// pdfcpu counts pages from 1 of the whole file.
		split, err := pdfsplit.Split(data, s.password(p.Source), ranges)
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
		return o, nil, stage.Permanent("no text found: the document is blank", nil)
	}
	o.Chunks = n
	for i := range chunks {
		mp := &chunks[i]
		mp.Index, mp.Count = i+1, n
		if objects != nil {
			ext, ctype := "txt", "text/plain; charset=utf-8"
			if p.Type == jobs.FilePDF {
				ext, ctype = "pdf", "application/pdf"
			}
			mp.Chunk = workarea.ChunkKey(p.Batch, p.Item, mp.Index, ext)
			if err := out.Put(ctx, mp.Chunk, bytes.NewReader(objects[i]), int64(len(objects[i])), ctype); err != nil {
				return o, nil, fmt.Errorf("write %s: %w", mp.Chunk, err)
			}
		}
	}
	if ranges != nil {
		// The text measured here is what the map tasks read (pagetext.go).
		if err := s.keepPages(ctx, it, doc, ranges, chunks); err != nil {
			return o, nil, fmt.Errorf("keep the page texts: %w", err)
		}
	}
	return o, chunks, nil
}

// planPages groups the document's pages into ranges whose measured text
// fits the budget; a page without text that the model will see as an image
// weighs a share of the budget, so that a range carries at most as many
// images as one request takes.
func planPages(doc docContent, budget, maxImages int) []pdfsplit.Range {
	perImage := budget / min(max(maxImages, 1), 4)
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
	// Text is the text of the chunk's pages as the model saw it, and
	// Scanned its pages read as images: the reduce checks the digest's
	// quotes against them.
	Text    []pageText `json:"text,omitempty"`
	Scanned []int      `json:"scanned,omitempty"`
}

// mapPartial is one map answer (a chunk too large for one request has
// several).
type mapPartial struct {
	FirstPage int            `json:"first_page"`
	LastPage  int            `json:"last_page"`
	Facts     map[string]any `json:"facts"`
}

// Map maps one chunk of a long document and writes its answer as
// map-NNNN.json, unless the answer is already written (a duplicate
// delivery, or a retry after the write): then the model is not asked again.
func (s *Stage) Map(ctx context.Context, it Item, mp chunktask.MapPayload) error {
	p, out := mp.Item, it.Out
	key, name := workarea.MapResultKey(p.Batch, p.Item, mp.Index), mapAnswerName(mp.Index)
	switch _, err := out.Stat(ctx, key); {
	case err == nil:
		it.Log.InfoContext(ctx, "chunk already mapped: model not asked again")
	case errors.Is(err, fs.ErrNotExist) || storage.IsPermanent(err):
		if it.Keep.Enabled() && !it.Keep.Fresh { // an earlier attempt may have kept it in Redis
			if _, ok, err := it.Keep.GetWork(ctx, key, name); err != nil {
				return err
			} else if ok {
				it.Log.InfoContext(ctx, "chunk already mapped: model not asked again")
				return nil
			}
		}
		res, err := s.mapAsk(ctx, it, mp)
		if err != nil {
			return err
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		// Written to the work area, or else kept in Redis: a map answer
		// paid for is not asked for again.
		if !it.Keep.Enabled() {
			return stage.Put(ctx, out, key, b, "application/json")
		}
		return it.Keep.PutWork(ctx, key, name, b)
	default:
		return fmt.Errorf("stat %s: %w", key, err)
	}
	return nil
}

// mapAnswerName names chunk index's map answer among the item's answers
// kept in Redis.
func mapAnswerName(index int) string { return fmt.Sprintf("map-%04d", index) }

// mapAsk reads the chunk and asks the map prompt for each of its units:
// its text (in pieces when over the budget) and its pages without text,
// in groups the model takes as images.
func (s *Stage) mapAsk(ctx context.Context, it Item, mp chunktask.MapPayload) (mapResult, error) {
	p := mp.Item
	res := mapResult{V: 1, Index: mp.Index, Count: mp.Count, Partials: []mapPartial{}}
	doc, err := s.chunkContent(ctx, it, mp)
	if err != nil {
		return res, err
	}
	if err := it.Report.Stopped(ctx); err != nil {
		return res, err
	}
	res.Text = pagesOf(doc.text)
	mapT, err := s.cfg.Prompts.Load(prompts.SummaryMap)
	if err != nil {
		return res, fmt.Errorf("map prompt: %w", err)
	}
	var o stage.Outcome
	sm := s.summarizer(it, &o, mp.DocPages)
	maxImages := it.Model.Profile().MaxImages
	if len(doc.scanned) > 0 && maxImages == 0 {
		doc.scanned = nil // left out, as in the item task
	}
	ask := func(text string, images []scannedPage) error {
		first, last := pageSpan(text)
		if len(images) > 0 {
			first, last = images[0].page, images[len(images)-1].page
		}
		user, err := mapT.Render(prompts.ChunkData{Language: sm.lang, Chunk: mp.Index, Chunks: mp.Count, FirstPage: first, LastPage: last})
		if err != nil {
			return fmt.Errorf("map prompt: %w", err)
		}
		req := docRequest(mapT, user, p, text)
		if len(images) > 0 {
			req.Parts = []llm.Part{{Text: user}}
			for _, im := range images {
				req.Parts = append(req.Parts, llm.Part{Text: prompts.PageMarker(im.page), Document: true},
					llm.Part{Image: &llm.Image{MIME: "image/jpeg", Data: im.jpeg, Width: im.width, Height: im.height}})
			}
		}
		a, err := sm.ask(ctx, mapT, req)
		if err != nil {
			return err
		}
		res.Partials = append(res.Partials, mapPartial{FirstPage: first, LastPage: last, Facts: a.Doc})
		return nil
	}
	if strings.TrimSpace(stripMarkers(doc.text)) != "" {
		texts := []string{doc.text}
		if chunk.EstimateTokens(doc.text) > sm.budget {
			texts = texts[:0]
			for _, c := range chunk.Split(doc.text, sm.budget, 200) {
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
	for _, g := range groupPages(doc.scanned, maxImages) {
		if err := ask("", g); err != nil {
			return res, fmt.Errorf("scanned pages %d-%d: %w", g[0].page, g[len(g)-1].page, err)
		}
		for _, sp := range g {
			res.Scanned = append(res.Scanned, sp.page)
		}
	}
	res.InputTokens, res.OutputTokens, res.Cost, res.Currency, res.Model = o.InputTokens, o.OutputTokens, o.Cost, o.Currency, o.Model
	res.Requests, res.Estimated = sm.requests, sm.estimated
	return res, nil
}

// chunkContent reads one chunk: the page texts kept when it was planned
// (pagetext.go), its text object, its chunk PDF (page numbers shifted to the
// original's), or its page range of the original. Pages without text are
// rendered.
func (s *Stage) chunkContent(ctx context.Context, it Item, mp chunktask.MapPayload) (docContent, error) {
	p := mp.Item
	t0 := time.Now()
	defer func() { s.cfg.Metrics.TextExtracted(p.Type, time.Since(t0)) }()
	if mp.Pages != nil {
		if d, ok, err := s.keptPages(ctx, it, mp); ok || err != nil {
			return d, err
		}
	}
	if mp.Chunk != "" {
		data, err := stage.Read(ctx, it.Out, jobs.Ref{Location: p.Out, Key: mp.Chunk}, s.cfg.MaxInputBytes)
		if errors.Is(err, fs.ErrNotExist) {
			return docContent{}, stage.Permanent(fmt.Sprintf("chunk object %s is missing from the work prefix", mp.Chunk), err)
		}
		if err != nil {
			return docContent{}, err
		}
		if mp.Pages == nil {
			text, err := extract.Text(data)
			return docContent{text: text}, extractError(err)
		}
		want := mp.Pages.Last - mp.Pages.First + 1
		d, err := s.pdfContent(ctx, it, data, pdfRead{offset: mp.Pages.First - 1, render: true})
		if err == nil && d.pages == want {
			return d, nil
		}
		// A chunk PDF PDFium cannot read as cut: read the original instead.
		reason := fmt.Sprintf("%d pages, want %d", d.pages, want)
		if err != nil {
			reason = err.Error()
		}
		it.Log.InfoContext(ctx, "chunk PDF unusable: reading the original's pages", "reason", reason)
	}
	data, err := it.ReadSource(ctx)
	if err != nil {
		return docContent{}, err
	}
	return s.pdfContent(ctx, it, data, pdfRead{password: s.password(p.Source), first: mp.Pages.First, last: mp.Pages.Last, render: true})
}

// Reduce reads every map answer of a long document, reduces them in a tree
// and writes the digest, summing what every stage cost into o.
func (s *Stage) Reduce(ctx context.Context, it Item, rp chunktask.ReducePayload, o *stage.Outcome) error {
	p := rp.Item
	sm := s.summarizer(it, o, rp.DocPages)
	var partials []string
	var results []mapResult
	for i := 1; i <= rp.Count; i++ {
		key := workarea.MapResultKey(p.Batch, p.Item, i)
		res, err := readMapResult(ctx, it, key, mapAnswerName(i))
		if errors.Is(err, fs.ErrNotExist) {
			return stage.Permanent(fmt.Sprintf("the map answer of chunk %d of %d (%s) is missing", i, rp.Count, key), err)
		}
		if err != nil {
			return err
		}
		o.InputTokens += res.InputTokens
		o.OutputTokens += res.OutputTokens
		o.Cost += res.Cost
		o.Currency = cmp.Or(res.Currency, o.Currency)
		o.Model = cmp.Or(res.Model, o.Model)
		sm.requests += res.Requests
		sm.estimated = sm.estimated || res.Estimated
		results = append(results, mapResult{Text: res.Text, Scanned: res.Scanned})
		for _, pt := range res.Partials {
			partials = append(partials, fmt.Sprintf("Partial result %d (pages %d-%d):\n%s", len(partials)+1, pt.FirstPage, pt.LastPage, compactJSON(pt.Facts)))
		}
	}
	if len(partials) == 0 {
		return stage.Permanent("no text found: the document is blank", nil)
	}
	it.Log.InfoContext(ctx, "document mapped", "chunks", rp.Count, "partials", len(partials))
	src := sourceOf(results)
	tmpl, final, err := sm.keptOr(ctx, keptReduce, prompts.SummaryReduce, func() (*prompts.Template, stage.Answer, error) {
		tmpl, a, err := sm.reduce(ctx, partials)
		if err != nil {
			return tmpl, a, err
		}
		a, err = sm.checkQuotes(ctx, src, a, func(note string) (stage.Answer, error) {
			return sm.ask(ctx, tmpl, withNote(sm.lastReq, note))
		})
		return tmpl, a, err
	})
	if err != nil {
		return err
	}
	if err := sm.writeDigest(ctx, tmpl, final); err != nil {
		return err
	}
	if !p.Options.KeepText {
		return nil
	}
	var pages []pageText
	var scanned []int
	for _, r := range results {
		pages, scanned = append(pages, r.Text...), append(scanned, r.Scanned...)
	}
	return sm.keepText(ctx, pages, scanned)
}

// readMapResult reads a map answer from the work area, or from Redis where
// the map kept it when the work area could not take it.
func readMapResult(ctx context.Context, it Item, key, name string) (mapResult, error) {
	var res mapResult
	b, err := stage.ReadAll(ctx, it.Out, key)
	if err != nil && it.Keep.Enabled() {
		if kb, ok, kerr := it.Keep.GetWork(ctx, key, name); kerr == nil && ok {
			b, err = kb, nil
		}
	}
	if err != nil {
		return res, fmt.Errorf("read %s: %w", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return res, stage.Permanent(fmt.Sprintf("the map answer %s is not valid JSON: %v", key, err), err)
	}
	return res, nil
}

// RemoveWork deletes an item's work objects (its chunks and map answers)
// from out.
func RemoveWork(ctx context.Context, out storage.Store, p jobs.ItemPayload) error {
	var keys []string
	for info, err := range out.List(ctx, workarea.WorkPrefix(p.Batch, p.Item), storage.ListOptions{Recursive: true}) {
		if err != nil {
			return err
		}
		keys = append(keys, info.Key)
	}
	var err error
	for _, k := range keys {
		err = errors.Join(err, out.Delete(ctx, k))
	}
	return err
}
