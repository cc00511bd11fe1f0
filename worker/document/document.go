package document

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/evidence"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/metrics"
	"github.com/llamapipe/llamapipe/worker/pdftext"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Model is the model as this stage calls it (llm.Client has both methods).
type Model interface {
	Complete(ctx context.Context, req llm.Request) (llm.Response, error)
	Profile() llm.Profile
}

// Reporter is what the stage tells the batch record about one item, and
// asks of it.
type Reporter interface {
	// Progress records the item's stage for the dashboard, best effort.
	Progress(ctx context.Context, stage string, done, total int)
	// Stopped returns an error when the item must stop at this step (its
	// batch was cancelled); the stage returns it wrapped.
	Stopped(ctx context.Context) error
}

// Config is the document stage's settings.
type Config struct {
	// Prompts override embedded prompt templates by name. Nil: embedded.
	Prompts prompts.Set
	// PDF configures the PDF text extractor (started on first use).
	PDF pdftext.Config
	// PDFPasswords maps a source key, full URL or file name to its PDF
	// password.
	PDFPasswords map[string]string
	// Image prepares rendered pages without text for the model; the model's
	// limits must already be applied. Zero: imageprep's defaults.
	Image imageprep.Options
	// MaxInputBytes caps how much of one chunk object is read. Zero means
	// 512 MiB.
	MaxInputBytes int64
	// Metrics records extraction times. Nil records nothing.
	Metrics *metrics.Metrics
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Stage summarizes documents. It is safe for concurrent use; Close stops
// its PDF extractor.
type Stage struct {
	cfg Config

	pdfOnce sync.Once
	pdf     *pdftext.Extractor
	pdfErr  error

	// pagesExtracted and pagesRendered count PDF pages whose text was
	// extracted and pages rendered, since New (PagesRead).
	pagesExtracted, pagesRendered atomic.Int64
}

// PagesRead returns how many PDF pages the stage has extracted the text of,
// and how many it has rendered as images, since New. Planning a long PDF's
// chunks extracts each page once and keeps the text in the work area
// (pagetext.go), so a long PDF costs one extraction per page in all.
func (s *Stage) PagesRead() (extracted, rendered int64) {
	return s.pagesExtracted.Load(), s.pagesRendered.Load()
}

// New returns the document stage.
func New(cfg Config) *Stage {
	cfg.MaxInputBytes = cmp.Or(cfg.MaxInputBytes, 512<<20)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Stage{cfg: cfg}
}

// Close stops the PDF extractor, if it was started.
func (s *Stage) Close() error {
	if s.pdf != nil {
		return s.pdf.Close()
	}
	return nil
}

func (s *Stage) pdfExtractor(ctx context.Context) (*pdftext.Extractor, error) {
	s.pdfOnce.Do(func() {
		s.pdf, s.pdfErr = pdftext.New(ctx, s.cfg.PDF)
		if s.pdfErr != nil {
			s.pdfErr = fmt.Errorf("start PDF extractor: %w", s.pdfErr)
		}
	})
	return s.pdf, s.pdfErr
}

// Item is one document item's work: its payload, where its results (and
// its work objects) go, the model to ask, a logger with the item's fields,
// its Reporter, and a way to read its source (the map tasks of a chunk
// that could not be cut read the original).
type Item struct {
	Payload    jobs.ItemPayload
	Out        storage.Store
	Model      Model
	Log        *slog.Logger
	Report     Reporter
	ReadSource func(ctx context.Context) ([]byte, error)
	// Keep keeps the model's digest answer until the digest is written
	// (see stage.Keeper), and the map answers when the work area cannot
	// be written. Zero: nothing is kept.
	Keep stage.Keeper
}

// Summarize extracts a document's text (data, its source's bytes) and asks
// the model for a digest in one request when the text fits the context
// budget. A longer document (or one with scanned pages) is continued
// elsewhere: its chunks are planned by the measured tokens and written under
// the batch's work prefix, and Summarize returns a Continued outcome with
// one map payload per chunk (Index, Count and Chunk set), for the caller to
// enqueue; the reduce writes the digest.
func (s *Stage) Summarize(ctx context.Context, it Item, data []byte, start time.Time) (stage.Outcome, []chunktask.MapPayload, error) {
	var o stage.Outcome
	log := it.Log
	doc, err := s.documentContent(ctx, it, data)
	o.Pages = doc.pages
	if err != nil {
		return o, nil, err
	}
	hasText := strings.TrimSpace(stripMarkers(doc.text)) != ""
	if !hasText && len(doc.scanned) == 0 {
		return o, nil, stage.Permanent("no text found: the document is blank", nil)
	}
	prof := it.Model.Profile()
	if len(doc.scanned) > 0 && prof.MaxImages == 0 {
		if !hasText {
			return o, nil, stage.Permanent(fmt.Sprintf("scanned document: its %d pages have no text layer and model %s cannot read images", len(doc.scanned), prof.Model), nil)
		}
		log.InfoContext(ctx, "scanned pages left out: the model takes no images", "pages", len(doc.scanned))
		doc.scanned = nil
	}
	sm := s.summarizer(it, &o, doc.pages)
	if it.Payload.Type == jobs.FileEML {
		return o, nil, s.correspondence(ctx, sm, doc.text)
	}
	if len(doc.scanned) > 0 || chunk.EstimateTokens(doc.text) > sm.budget {
		return s.distribute(ctx, it, data, doc, sm.budget, start)
	}
	tmpl, final, err := sm.keptOr(ctx, keptSummary, prompts.Summary, func() (*prompts.Template, stage.Answer, error) {
		return sm.single(ctx, doc.text)
	})
	if llm.KindOf(err) == llm.TooLarge {
		// The provider found it too large after all: map-reduce in
		// halves.
		log.InfoContext(ctx, "document too large for one request: splitting", "error", err.Error())
		return s.distribute(ctx, it, data, doc, sm.budget/2, start)
	}
	if err != nil {
		return o, nil, err
	}
	if err := sm.writeDigest(ctx, tmpl, final); err != nil {
		return o, nil, err
	}
	if it.Payload.Options.KeepText {
		if err := sm.keepText(ctx, pagesOf(doc.text), nil); err != nil {
			return o, nil, err
		}
	}
	return o, nil, nil
}

// writeDigest writes the document's <base>.summary.json and .summary.md and
// lists them as the outcome's results.
func (s *summarizer) writeDigest(ctx context.Context, tmpl *prompts.Template, final stage.Answer) error {
	p := s.it.Payload
	jsonKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryJSON)
	mdKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryMD)
	m := stage.NewMeta(p, s.it.Model.Profile().Provider, tmpl.Version, *s.o, s.requests, s.estimated || final.Usage.Estimated, s.st.cfg.Now())
	js, err := stage.JSONObject(jsonKey, final.Doc, m)
	if err != nil {
		return err
	}
	md := renderDigest(s.title, final.Doc, m)
	// One group: on a local folder one commit makes both durable.
	if err := stage.PutGroup(ctx, s.it.Out, []storage.Object{js, {Key: mdKey, Data: []byte(md), ContentType: "text/markdown; charset=utf-8"}}); err != nil {
		return err
	}
	s.o.Results = []string{jsonKey, mdKey}
	return nil
}

// summarizer carries one document's summarization state.
type summarizer struct {
	st            *Stage
	it            Item
	o             *stage.Outcome
	title, lang   string
	pages, budget int
	requests      int
	estimated     bool
	// lastReq is the last reduce request (asked again when quotes are not
	// found).
	lastReq llm.Request
	// mail: an email message, summarized with the correspondence template
	// (correspondence.go).
	mail bool
}

// summarizer starts one document's summarization state; its outcome
// accumulates in o.
func (s *Stage) summarizer(it Item, o *stage.Outcome, pages int) *summarizer {
	p := it.Payload
	return &summarizer{st: s, it: it, o: o, title: docTitle(p), lang: stage.Language(p.Options),
		pages: pages, budget: textBudget(it)}
}

// progress reports the document's stage (best effort: a Redis hiccup must
// not fail the item) and says whether the item must stop.
func (s *summarizer) progress(ctx context.Context, stage string, done, total int) error {
	s.it.Report.Progress(ctx, stage, done, total)
	return s.it.Report.Stopped(ctx)
}

func (s *summarizer) ask(ctx context.Context, tmpl *prompts.Template, req llm.Request) (stage.Answer, error) {
	a, err := stage.Ask(ctx, s.it.Model, tmpl, req, s.it.Out, s.it.Payload.ResultBase)
	s.o.Add(a, s.it.Model.Profile().Prices)
	s.requests += a.Calls
	s.estimated = s.estimated || a.Usage.Estimated
	return a, err
}

// single summarizes a document that fits one request.
func (s *summarizer) single(ctx context.Context, text string) (*prompts.Template, stage.Answer, error) {
	name, data := s.singlePrompt()
	tmpl, err := s.st.cfg.Prompts.Load(name)
	if err != nil {
		return nil, stage.Answer{}, fmt.Errorf("%s prompt: %w", name, err)
	}
	user, err := tmpl.Render(data)
	if err != nil {
		return nil, stage.Answer{}, fmt.Errorf("%s prompt: %w", name, err)
	}
	req := docRequest(tmpl, user, s.it.Payload, text)
	a, err := s.ask(ctx, tmpl, req)
	if err != nil {
		return tmpl, a, err
	}
	a, err = s.checkQuotes(ctx, evidence.NewSource(text, nil), a, func(note string) (stage.Answer, error) {
		return s.ask(ctx, tmpl, withNote(req, note))
	})
	return tmpl, a, err
}

// reduce combines partial results (map answers) in a tree: groups that fit
// the budget are reduced to partial digests, level by level, until one
// digest remains.
func (s *summarizer) reduce(ctx context.Context, partials []string) (*prompts.Template, stage.Answer, error) {
	tmpl, err := s.st.cfg.Prompts.Load(prompts.SummaryReduce)
	if err != nil {
		return nil, stage.Answer{}, fmt.Errorf("reduce prompt: %w", err)
	}
	var final stage.Answer
	for level := 1; ; level++ {
		groups := groupByBudget(partials, s.budget)
		next := make([]string, 0, len(groups))
		for gi, g := range groups {
			if err := s.progress(ctx, fmt.Sprintf("reduce level %d", level), gi, len(groups)); err != nil {
				return nil, stage.Answer{}, err
			}
			user, err := tmpl.Render(prompts.ReduceData{Language: s.lang, Parts: len(g), Title: s.title, Pages: s.pages})
			if err != nil {
				return nil, stage.Answer{}, fmt.Errorf("reduce prompt: %w", err)
			}
			req := docRequest(tmpl, user, s.it.Payload, strings.Join(g, "\n\n"))
			a, err := s.ask(ctx, tmpl, req)
			if err != nil {
				return nil, stage.Answer{}, fmt.Errorf("reduce level %d group %d: %w", level, gi+1, err)
			}
			s.lastReq = req
			final = a
			next = append(next, fmt.Sprintf("Partial digest %d:\n%s", gi+1, compactJSON(a.Doc)))
		}
		if len(groups) == 1 {
			return tmpl, final, nil
		}
		if len(next) >= len(partials) {
			return nil, stage.Answer{}, stage.Permanent("document too long to summarize within the model's context window", nil)
		}
		s.it.Log.InfoContext(ctx, "reduce level done", "level", level, "partials", len(next))
		partials = next
	}
}

// textBudget is how many tokens of document text one request of the item
// may carry.
func textBudget(it Item) int {
	return TextBudget(it.Model.Profile(), it.Payload.Options.MaxOutputTokens)
}

// TextBudget is how many tokens of document text one request to a model
// with this profile may carry, leaving room for the prompt and for an answer
// of maxOut tokens (zero: the profile's cap, at most 4096).
func TextBudget(prof llm.Profile, maxOut int) int { return estimate.TextBudget(prof, maxOut) }

// docRequest builds a request whose document text travels in its own part,
// marked as data, never as instructions.
func docRequest(tmpl *prompts.Template, user string, p jobs.ItemPayload, text string) llm.Request {
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
	// pageEnd[i] is where page first+i's text (marker included) ends in
	// text; it starts where page first+i-1's ends (PDFs only).
	pageEnd []int
	scanned []scannedPage
}

type scannedPage struct {
	page          int
	jpeg          []byte
	width, height int
}

// documentContent extracts a document's content by type. Scanned PDF pages
// are listed, not rendered (the map tasks render them).
func (s *Stage) documentContent(ctx context.Context, it Item, data []byte) (docContent, error) {
	p := it.Payload
	t0 := time.Now()
	defer func() { s.cfg.Metrics.TextExtracted(p.Type, time.Since(t0)) }()
	ctx, span := tracing.Start(ctx, tracing.SpanExtract)
	defer span.End()
	if p.Type == jobs.FilePDF {
		r := pdfRead{password: s.password(p.Source), report: true}
		if pr := p.Source.Pages; pr != nil {
			r.first, r.last = pr.First, pr.Last
		}
		return s.pdfContent(ctx, it, data, r)
	}
	var d docContent
	var err error
	d.text, err = extract.Document(p.Type, data, extract.Limits{})
	if errors.Is(err, extract.ErrNotText) {
		return d, stage.Permanent(fmt.Sprintf("unsupported document type %q", p.Type), nil)
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
		return stage.Permanent(err.Error(), err)
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

func (s *Stage) pdfContent(ctx context.Context, it Item, data []byte, r pdfRead) (docContent, error) {
	var d docContent
	ex, err := s.pdfExtractor(ctx)
	if err != nil {
		return d, err
	}
	doc, err := ex.Open(ctx, data, r.password)
	switch {
	case errors.Is(err, pdftext.ErrPassword):
		return d, stage.Permanent("encrypted: a password is required to open this PDF (give it with --pdf-passwords)", err)
	case errors.Is(err, pdftext.ErrDamaged):
		return d, stage.Permanent("damaged PDF: "+err.Error(), err)
	case errors.Is(err, pdftext.ErrTooManyPages):
		return d, stage.Permanent("refused: "+err.Error(), err)
	case err != nil:
		return d, err
	}
	defer doc.Close()
	n := doc.Pages()
	d.pages = n
	if n == 0 {
		return d, stage.Permanent("the PDF has no pages", nil)
	}
	first, last := 1, n
	if r.first > 0 {
		first, last = r.first, min(r.last, n)
	}
	if first > last {
		return d, stage.Permanent(fmt.Sprintf("pages %d-%d are not in this %d-page PDF", r.first+r.offset, r.last+r.offset, n), nil)
	}
	d.first = first + r.offset
	canSee := it.Model.Profile().MaxImages > 0
	var sb strings.Builder
	for i := first; i <= last; i++ {
		if r.report && (i-first)%50 == 0 {
			it.Report.Progress(ctx, "extract pages", i-first, last-first+1)
		}
		t, err := doc.PageText(ctx, i-1)
		s.pagesExtracted.Add(1)
		if err != nil {
			return d, fmt.Errorf("page %d: %w", i+r.offset, err)
		}
		if t = strings.TrimSpace(t); t == "" {
			d.pageTokens = append(d.pageTokens, 0)
			d.pageEnd = append(d.pageEnd, sb.Len())
			if !canSee {
				d.scanned = append(d.scanned, scannedPage{page: i + r.offset}) // counted, not rendered
				continue
			}
			if len(d.scanned) >= maxScannedPages {
				return d, stage.Permanent(fmt.Sprintf("more than %d pages without a text layer: too many to send as images", maxScannedPages), nil)
			}
			sp := scannedPage{page: i + r.offset}
			if r.render {
				if sp, err = s.renderPage(ctx, doc, i, r.offset); err != nil {
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
		d.pageEnd = append(d.pageEnd, sb.Len())
	}
	d.text = sb.String()
	return d, nil
}

// renderPage renders page i (1-based in doc; page i+offset of the original)
// without text at 150 dpi and prepares it like
// any image for the model (fit, JPEG, byte cap).
func (s *Stage) renderPage(ctx context.Context, doc *pdftext.Doc, i, offset int) (scannedPage, error) {
	page := i + offset
	img, err := doc.RenderPage(ctx, i-1, 150)
	s.pagesRendered.Add(1)
	if err != nil {
		if errors.Is(err, pdftext.ErrPageTooLarge) || errors.Is(err, pdftext.ErrDamaged) {
			return scannedPage{}, stage.Permanent(fmt.Sprintf("page %d cannot be rendered: %v", page, err), err)
		}
		return scannedPage{}, fmt.Errorf("render page %d: %w", page, err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}); err != nil {
		return scannedPage{}, fmt.Errorf("encode page %d: %w", page, err)
	}
	res, err := imageprep.Prepare(ctx, buf.Bytes(), s.cfg.Image)
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
func (s *Stage) password(ref jobs.Ref) string { return estimate.Password(s.cfg.PDFPasswords, ref) }

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

// docTitle is the document's file name: an email attachment's own (the
// last element of its result base), else the object's.
func docTitle(p jobs.ItemPayload) string {
	if p.Source.Part != "" {
		return path.Base(p.ResultBase)
	}
	return path.Base(p.Source.Key)
}
