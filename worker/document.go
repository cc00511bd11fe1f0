package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/pdftext"
)

// summarize extracts a document's text and asks the model for a digest in
// one request when the text fits the context budget. A longer document (or
// one with scanned pages) is continued elsewhere: its chunks are planned by
// the measured tokens, written under the batch's work prefix and mapped by
// separate tasks (see distribute), and its reduce task writes the digest and
// records the item.
func (w *Worker) summarize(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, data []byte, out storage.Store, start time.Time) (outcome, error) {
	var o outcome
	doc, err := w.documentContent(ctx, p, data)
	o.pages = doc.pages
	if err != nil {
		return o, err
	}
	hasText := strings.TrimSpace(stripMarkers(doc.text)) != ""
	if !hasText && len(doc.scanned) == 0 {
		return o, permanent("no text found: the document is blank", nil)
	}
	prof := w.cfg.Model.Profile()
	if len(doc.scanned) > 0 && prof.MaxImages == 0 {
		if !hasText {
			return o, permanent(fmt.Sprintf("scanned document: its %d pages have no text layer and model %s cannot read images", len(doc.scanned), prof.Model), nil)
		}
		log.InfoContext(ctx, "scanned pages left out: the model takes no images", "pages", len(doc.scanned))
		doc.scanned = nil
	}
	s := &summarizer{w: w, log: log, p: p, out: out, o: &o, title: path.Base(p.Source.Key), lang: language(p.Options),
		pages: doc.pages, budget: w.textBudget(p)}
	if len(doc.scanned) > 0 || chunk.EstimateTokens(doc.text) > s.budget {
		return w.distribute(ctx, log, p, data, out, doc, s.budget, start)
	}
	tmpl, final, err := s.single(ctx, doc.text)
	if llm.KindOf(err) == llm.TooLarge {
		// The provider found it too large after all: map-reduce in
		// halves.
		log.InfoContext(ctx, "document too large for one request: splitting", "error", err.Error())
		return w.distribute(ctx, log, p, data, out, doc, s.budget/2, start)
	}
	if err != nil {
		return o, err
	}
	if err := s.writeDigest(ctx, tmpl, final); err != nil {
		return o, err
	}
	return o, nil
}

// writeDigest writes the document's <base>.summary.json and .summary.md and
// lists them as the outcome's results.
func (s *summarizer) writeDigest(ctx context.Context, tmpl *prompts.Template, final answer) error {
	p := s.p
	jsonKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryJSON)
	mdKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryMD)
	m := s.w.meta(p, tmpl, *s.o, s.requests, s.estimated || final.usage.Estimated)
	if err := putJSON(ctx, s.out, jsonKey, final.doc, m); err != nil {
		return err
	}
	md := renderDigest(s.title, final.doc, m)
	if err := s.out.Put(ctx, mdKey, strings.NewReader(md), int64(len(md)), "text/markdown; charset=utf-8"); err != nil {
		return fmt.Errorf("write %s: %w", mdKey, err)
	}
	s.o.results = []string{jsonKey, mdKey}
	return nil
}

// summarizer carries one document's summarization state.
type summarizer struct {
	w             *Worker
	log           *slog.Logger
	p             jobs.ItemPayload
	out           storage.Store
	o             *outcome
	title, lang   string
	pages, budget int
	requests      int
	estimated     bool
}

// progress reports the document's stage (best effort: a Redis hiccup must
// not fail the item).
func (s *summarizer) progress(ctx context.Context, stage string, done, total int) error {
	s.w.progress(ctx, s.p, stage, done, total)
	return s.w.checkCancelled(ctx, s.p)
}

func (s *summarizer) ask(ctx context.Context, tmpl *prompts.Template, req llm.Request) (answer, error) {
	a, err := s.w.ask(ctx, tmpl, req, s.out, s.p.ResultBase)
	s.o.add(a, s.w.cfg.Model.Profile().Prices)
	s.requests += a.calls
	s.estimated = s.estimated || a.usage.Estimated
	return a, err
}

// single summarizes a document that fits one request.
func (s *summarizer) single(ctx context.Context, text string) (*prompts.Template, answer, error) {
	tmpl, err := s.w.cfg.Prompts.Load(prompts.Summary)
	if err != nil {
		return nil, answer{}, fmt.Errorf("summary prompt: %w", err)
	}
	user, err := tmpl.Render(prompts.SummaryData{Language: s.lang, Title: s.title, Pages: s.pages})
	if err != nil {
		return nil, answer{}, fmt.Errorf("summary prompt: %w", err)
	}
	a, err := s.ask(ctx, tmpl, s.w.docRequest(tmpl, user, s.p, text))
	return tmpl, a, err
}

// reduce combines partial results (map answers) in a tree: groups that fit
// the budget are reduced to partial digests, level by level, until one
// digest remains.
func (s *summarizer) reduce(ctx context.Context, partials []string) (*prompts.Template, answer, error) {
	tmpl, err := s.w.cfg.Prompts.Load(prompts.SummaryReduce)
	if err != nil {
		return nil, answer{}, fmt.Errorf("reduce prompt: %w", err)
	}
	var final answer
	for level := 1; ; level++ {
		groups := groupByBudget(partials, s.budget)
		next := make([]string, 0, len(groups))
		for gi, g := range groups {
			if err := s.progress(ctx, fmt.Sprintf("reduce level %d", level), gi, len(groups)); err != nil {
				return nil, answer{}, err
			}
			user, err := tmpl.Render(prompts.ReduceData{Language: s.lang, Parts: len(g), Title: s.title, Pages: s.pages})
			if err != nil {
				return nil, answer{}, fmt.Errorf("reduce prompt: %w", err)
			}
			a, err := s.ask(ctx, tmpl, s.w.docRequest(tmpl, user, s.p, strings.Join(g, "\n\n")))
			if err != nil {
				return nil, answer{}, fmt.Errorf("reduce level %d group %d: %w", level, gi+1, err)
			}
			final = a
			next = append(next, fmt.Sprintf("Partial digest %d:\n%s", gi+1, compactJSON(a.doc)))
		}
		if len(groups) == 1 {
			return tmpl, final, nil
		}
		if len(next) >= len(partials) {
			return nil, answer{}, permanent("document too long to summarize within the model's context window", nil)
		}
		s.log.InfoContext(ctx, "reduce level done", "level", level, "partials", len(next))
		partials = next
	}
}

// textBudget is how many tokens of document text one request may carry.
func (w *Worker) textBudget(p jobs.ItemPayload) int {
	return TextBudget(w.cfg.Model.Profile(), p.Options.MaxOutputTokens)
}

// TextBudget is how many tokens of document text one request to a model
// with this profile may carry, leaving room for the prompt and for an answer
// of maxOut tokens (zero: the profile's cap, at most 4096).
func TextBudget(prof llm.Profile, maxOut int) int { return estimate.TextBudget(prof, maxOut) }

// docRequest builds a request whose document text travels in its own part,
// marked as data, never as instructions.
func (w *Worker) docRequest(tmpl *prompts.Template, user string, p jobs.ItemPayload, text string) llm.Request {
	return llm.Request{
		System:          tmpl.System,
		Parts:           []llm.Part{{Text: user}, {Text: text, Document: true}},
		MaxOutputTokens: p.Options.MaxOutputTokens,
	}
}

// docContent is a document's text (PDF text carries page markers) and the
// pages that have no text layer: rendered for the model to read, or only
// listed (page numbers) when not asked to render.
type docContent struct {
	text  string
	pages int
	// first is the first page read and pageTokens[i] the estimated tokens of
	// page first+i's text with its marker (PDFs only).
	first      int
	pageTokens []int
	scanned    []scannedPage
}

type scannedPage struct {
	page          int
	jpeg          []byte
	width, height int
}

// documentContent extracts a document's content by type. Scanned PDF pages
// are listed, not rendered (the map tasks render them).
func (w *Worker) documentContent(ctx context.Context, p jobs.ItemPayload, data []byte) (docContent, error) {
	t0 := time.Now()
	defer func() { w.cfg.Metrics.TextExtracted(p.Type, time.Since(t0)) }()
	var d docContent
	var err error
	switch p.Type {
	case "pdf":
		r := pdfRead{password: w.password(p.Source), report: true}
		if pr := p.Source.Pages; pr != nil {
			r.first, r.last = pr.First, pr.Last
		}
		return w.pdfContent(ctx, p, data, r)
	case "docx":
		d.text, err = extract.DOCX(data, extract.Limits{})
	case "html":
		d.text, err = extract.HTML(data)
	case "txt", "md":
		d.text, err = extract.Text(data)
	default:
		return d, permanent(fmt.Sprintf("unsupported document type %q", p.Type), nil)
	}
	return d, extractError(err)
}

// extractError marks extraction failures of bad input as permanent. The
// extract sentinels already name the problem ("unsupported text encoding:
// ...", "corrupt document: ..."), so the message is kept as it is.
func extractError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, extract.ErrUnsupportedEncoding), errors.Is(err, extract.ErrTooLarge), errors.Is(err, extract.ErrCorrupt):
		return permanent(err.Error(), err)
	}
	return err
}

// maxScannedPages caps how many pages without text one document may send
// to the model as images.
const maxScannedPages = 500

// pdfRead says which pages of a PDF to read, and how.
type pdfRead struct {
	password string
	// first and last are the 1-based pages of this PDF to read (0: from the
	// first, to the last page).
	first, last int
	// offset is added to page numbers: a chunk PDF's page 1 is the
	// original's page offset+1, so the digest cites the original's pages.
	offset int
	// render renders pages without text as images; else they are listed.
	render bool
	// report records extraction progress for the dashboard.
	report bool
}

func (w *Worker) pdfContent(ctx context.Context, p jobs.ItemPayload, data []byte, r pdfRead) (docContent, error) {
	var d docContent
	ex, err := w.pdfExtractor(ctx)
	if err != nil {
		return d, err
	}
	doc, err := ex.Open(ctx, data, r.password)
	switch {
	case errors.Is(err, pdftext.ErrPassword):
		return d, permanent("encrypted: a password is required to open this PDF (give it with --pdf-passwords)", err)
	case errors.Is(err, pdftext.ErrDamaged):
		return d, permanent("damaged PDF: "+err.Error(), err)
	case errors.Is(err, pdftext.ErrTooManyPages):
		return d, permanent("refused: "+err.Error(), err)
	case err != nil:
		return d, err
	}
	defer doc.Close()
	n := doc.Pages()
	d.pages = n
	if n == 0 {
		return d, permanent("the PDF has no pages", nil)
	}
	first, last := 1, n
	if r.first > 0 {
		first, last = r.first, min(r.last, n)
	}
	if first > last {
		return d, permanent(fmt.Sprintf("pages %d-%d are not in this %d-page PDF", r.first+r.offset, r.last+r.offset, n), nil)
	}
	d.first = first + r.offset
	canSee := w.cfg.Model.Profile().MaxImages > 0
	var sb strings.Builder
	for i := first; i <= last; i++ {
		if r.report && (i-first)%50 == 0 {
			w.progress(ctx, p, "extract pages", i-first, last-first+1)
		}
		t, err := doc.PageText(ctx, i-1)
		if err != nil {
			return d, fmt.Errorf("page %d: %w", i+r.offset, err)
		}
		if t = strings.TrimSpace(t); t == "" {
			d.pageTokens = append(d.pageTokens, 0)
			if !canSee {
				d.scanned = append(d.scanned, scannedPage{page: i + r.offset}) // counted, not rendered
				continue
			}
			if len(d.scanned) >= maxScannedPages {
				return d, permanent(fmt.Sprintf("more than %d pages without a text layer: too many to send as images", maxScannedPages), nil)
			}
			sp := scannedPage{page: i + r.offset}
			if r.render {
				if sp, err = w.renderPage(ctx, doc, i, r.offset); err != nil {
					return d, err
				}
			}
			d.scanned = append(d.scanned, sp)
			continue
		}
		before := sb.Len()
		sb.WriteString(prompts.PageMarker(i + r.offset))
		sb.WriteString("\n")
		sb.WriteString(t)
		sb.WriteString("\n\n")
		d.pageTokens = append(d.pageTokens, chunk.EstimateTokens(sb.String()[before:]))
	}
	d.text = sb.String()
	return d, nil
}

// renderPage renders page i (1-based in doc; page i+offset of the original)
// without text at 150 dpi and prepares it like
// any image for the model (fit, JPEG, byte cap).
func (w *Worker) renderPage(ctx context.Context, doc *pdftext.Doc, i, offset int) (scannedPage, error) {
	page := i + offset
	img, err := doc.RenderPage(ctx, i-1, 150)
	if err != nil {
		if errors.Is(err, pdftext.ErrPageTooLarge) || errors.Is(err, pdftext.ErrDamaged) {
			return scannedPage{}, permanent(fmt.Sprintf("page %d cannot be rendered: %v", page, err), err)
		}
		return scannedPage{}, fmt.Errorf("render page %d: %w", page, err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}); err != nil {
		return scannedPage{}, fmt.Errorf("encode page %d: %w", page, err)
	}
	res, err := imageprep.Prepare(ctx, buf.Bytes(), w.imageOptions())
	if err != nil {
		return scannedPage{}, fmt.Errorf("prepare page %d: %w", page, err)
	}
	return scannedPage{page: page, jpeg: res.JPEG, width: res.Width, height: res.Height}, nil
}

// groupPages packs scanned pages into groups of at most maxImages (and at
// most 4, to keep each answer focused).
func groupPages(pages []scannedPage, maxImages int) [][]scannedPage {
	size := min(max(maxImages, 1), 4)
	var out [][]scannedPage
	for i := 0; i < len(pages); i += size {
		out = append(out, pages[i:min(i+size, len(pages))])
	}
	return out
}

// password finds a PDF's password by full URL, key, or file name.
func (w *Worker) password(ref jobs.Ref) string { return estimate.Password(w.cfg.PDFPasswords, ref) }

var markerRE = regexp.MustCompile(prompts.PageMarkerPattern)

func stripMarkers(s string) string { return markerRE.ReplaceAllString(s, "") }

// pageSpan returns the first and last page markers in a chunk (0, 0 when
// it has none).
func pageSpan(s string) (int, int) {
	m := markerRE.FindAllStringSubmatch(s, -1)
	if len(m) == 0 {
		return 0, 0
	}
	first, _ := strconv.Atoi(m[0][1])
	last, _ := strconv.Atoi(m[len(m)-1][1])
	return first, last
}

// groupByBudget packs consecutive partial results into groups that fit the
// budget (a single over-budget partial gets a group of its own).
func groupByBudget(parts []string, budget int) [][]string {
	var groups [][]string
	var cur []string
	used := 0
	for _, s := range parts {
		n := chunk.EstimateTokens(s)
		if len(cur) > 0 && used+n > budget {
			groups = append(groups, cur)
			cur, used = nil, 0
		}
		cur = append(cur, s)
		used += n
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}
