package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/pdftext"
)

// promptReserve is the room left in the context window for the prompt's own
// instructions and framing.
const promptReserve = 2048

// summarize extracts a document's text and asks the model for a digest:
// in one request when the text fits the context budget, else map (one
// request per chunk) then reduce, in a tree until one digest remains.
func (w *Worker) summarize(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, data []byte, out storage.Store) (outcome, error) {
	var o outcome
	text, pages, err := w.documentText(ctx, p, data)
	o.pages = pages
	if err != nil {
		return o, err
	}
	if strings.TrimSpace(stripMarkers(text)) == "" {
		return o, permanent("no text found: the document has no text layer (a scanned PDF?) or is blank", nil)
	}
	prof := w.cfg.Model.Profile()
	budget := w.textBudget(p)
	title := path.Base(p.Source.Key)
	lang := language(p.Options)
	requests, estimated := 0, false
	var final answer
	var tmpl *prompts.Template

	if chunk.EstimateTokens(text) <= budget {
		tmpl, err = prompts.Load(prompts.Summary)
		if err != nil {
			return o, fmt.Errorf("summary prompt: %w", err)
		}
		user, err := tmpl.Render(prompts.SummaryData{Language: lang, Title: title, Pages: pages})
		if err != nil {
			return o, fmt.Errorf("summary prompt: %w", err)
		}
		final, err = w.ask(ctx, tmpl, w.docRequest(tmpl, user, p, text), out, p.ResultBase)
		o.add(final, prof.Prices)
		requests += final.calls
		if err != nil {
			return o, err
		}
	} else {
		mapT, err := prompts.Load(prompts.SummaryMap)
		if err != nil {
			return o, fmt.Errorf("map prompt: %w", err)
		}
		chunks := chunk.Split(text, budget, 200)
		partials := make([]string, 0, len(chunks))
		for i, c := range chunks {
			first, last := pageSpan(c.Text)
			user, err := mapT.Render(prompts.ChunkData{Language: lang, Chunk: i + 1, Chunks: len(chunks), FirstPage: first, LastPage: last})
			if err != nil {
				return o, fmt.Errorf("map prompt: %w", err)
			}
			a, err := w.ask(ctx, mapT, w.docRequest(mapT, user, p, c.Text), out, p.ResultBase)
			o.add(a, prof.Prices)
			requests += a.calls
			estimated = estimated || a.usage.Estimated
			if err != nil {
				return o, fmt.Errorf("chunk %d of %d: %w", i+1, len(chunks), err)
			}
			partials = append(partials, fmt.Sprintf("Partial result %d (pages %d-%d):\n%s", i+1, first, last, compactJSON(a.doc)))
		}
		log.InfoContext(ctx, "document mapped", "chunks", len(chunks))
		tmpl, err = prompts.Load(prompts.SummaryReduce)
		if err != nil {
			return o, fmt.Errorf("reduce prompt: %w", err)
		}
		for level := 1; ; level++ {
			groups := groupByBudget(partials, budget)
			next := make([]string, 0, len(groups))
			for gi, g := range groups {
				user, err := tmpl.Render(prompts.ReduceData{Language: lang, Parts: len(g), Title: title, Pages: pages})
				if err != nil {
					return o, fmt.Errorf("reduce prompt: %w", err)
				}
				a, err := w.ask(ctx, tmpl, w.docRequest(tmpl, user, p, strings.Join(g, "\n\n")), out, p.ResultBase)
				o.add(a, prof.Prices)
				requests += a.calls
				estimated = estimated || a.usage.Estimated
				if err != nil {
					return o, fmt.Errorf("reduce level %d group %d: %w", level, gi+1, err)
				}
				final = a
				next = append(next, fmt.Sprintf("Partial digest %d:\n%s", gi+1, compactJSON(a.doc)))
			}
			if len(groups) == 1 {
				break
			}
			if len(next) >= len(partials) {
				return o, permanent("document too long to summarize within the model's context window", nil)
			}
			log.InfoContext(ctx, "reduce level done", "level", level, "partials", len(next))
			partials = next
		}
	}
	jsonKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryJSON)
	mdKey := jobs.ResultKey(p.ResultBase, jobs.SuffixSummaryMD)
	m := w.meta(p, tmpl, o, requests, estimated || final.usage.Estimated)
	if err := putJSON(ctx, out, jsonKey, final.doc, m); err != nil {
		return o, err
	}
	md := renderDigest(title, final.doc, m)
	if err := out.Put(ctx, mdKey, strings.NewReader(md), int64(len(md)), "text/markdown; charset=utf-8"); err != nil {
		return o, fmt.Errorf("write %s: %w", mdKey, err)
	}
	o.results = []string{jsonKey, mdKey}
	return o, nil
}

// textBudget is how many tokens of document text one request may carry.
func (w *Worker) textBudget(p jobs.ItemPayload) int {
	return TextBudget(w.cfg.Model.Profile(), p.Options.MaxOutputTokens)
}

// TextBudget is how many tokens of document text one request to a model
// with this profile may carry, leaving room for the prompt and for an answer
// of maxOut tokens (zero: the profile's cap, at most 4096).
func TextBudget(prof llm.Profile, maxOut int) int {
	ctxTokens := prof.ContextTokens
	if ctxTokens <= 0 {
		ctxTokens = 8192
	}
	if maxOut == 0 {
		maxOut = min(prof.MaxOutputTokens, 4096)
	}
	return max(ctxTokens-maxOut-promptReserve, 512)
}

// docRequest builds a request whose document text travels in its own part,
// marked as data, never as instructions.
func (w *Worker) docRequest(tmpl *prompts.Template, user string, p jobs.ItemPayload, text string) llm.Request {
	return llm.Request{
		System:          tmpl.System,
		Parts:           []llm.Part{{Text: user}, {Text: text, Document: true}},
		MaxOutputTokens: p.Options.MaxOutputTokens,
	}
}

// documentText extracts text by type. PDF text carries page markers.
func (w *Worker) documentText(ctx context.Context, p jobs.ItemPayload, data []byte) (string, int, error) {
	switch p.Type {
	case "pdf":
		return w.pdfText(ctx, p, data)
	case "docx":
		s, err := extract.DOCX(data, extract.Limits{})
		return s, 0, extractError(err)
	case "html":
		s, err := extract.HTML(data)
		return s, 0, extractError(err)
	case "txt", "md":
		s, err := extract.Text(data)
		return s, 0, extractError(err)
	}
	return "", 0, permanent(fmt.Sprintf("unsupported document type %q", p.Type), nil)
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

func (w *Worker) pdfText(ctx context.Context, p jobs.ItemPayload, data []byte) (string, int, error) {
	ex, err := w.pdfExtractor(ctx)
	if err != nil {
		return "", 0, err
	}
	doc, err := ex.Open(ctx, data, w.password(p.Source))
	switch {
	case errors.Is(err, pdftext.ErrPassword):
		return "", 0, permanent("encrypted: a password is required to open this PDF (give it with --pdf-passwords)", err)
	case errors.Is(err, pdftext.ErrDamaged):
		return "", 0, permanent("damaged PDF: "+err.Error(), err)
	case errors.Is(err, pdftext.ErrTooManyPages):
		return "", 0, permanent("refused: "+err.Error(), err)
	case err != nil:
		return "", 0, err
	}
	defer doc.Close()
	n := doc.Pages()
	if n == 0 {
		return "", 0, permanent("the PDF has no pages", nil)
	}
	first, last := 1, n
	if r := p.Source.Pages; r != nil {
		first, last = r.First, min(r.Last, n)
	}
	var sb strings.Builder
	for i := first; i <= last; i++ {
		t, err := doc.PageText(ctx, i-1)
		if err != nil {
			return "", n, fmt.Errorf("page %d: %w", i, err)
		}
		sb.WriteString(prompts.PageMarker(i))
		sb.WriteString("\n")
		sb.WriteString(strings.TrimSpace(t))
		sb.WriteString("\n\n")
	}
	return sb.String(), n, nil
}

// password finds a PDF's password by full URL, key, or file name.
func (w *Worker) password(ref jobs.Ref) string {
	for _, k := range []string{ref.URL(), ref.Key, path.Base(ref.Key)} {
		if pw, ok := w.cfg.PDFPasswords[k]; ok {
			return pw
		}
	}
	return ""
}

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
