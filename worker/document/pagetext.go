package document

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/worker/pdfsplit"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// A long PDF's text is extracted once. Planning its chunks extracts every
// page's text to measure it; distribute keeps what it measured in the work
// area, one object per chunk holding that chunk's pages
// (chunk-NNNN.pages.json, beside the chunk PDF), and the map task reads it
// instead of extracting the pages again. Only the chunk's pages without a
// text layer are opened in PDFium by the map task, to be rendered (once:
// planning lists them, it does not render them). The object's key follows
// from the map payload (batch, item, index), so payloads stay references;
// RemoveWork deletes it with the rest of the item's work objects. A map
// payload whose pages object is missing (written by an older worker) reads
// its pages from the PDF as before.

// chunkPages is a chunk's kept page texts.
type chunkPages struct {
	V     int        `json:"v"`
	First int        `json:"first"`
	Last  int        `json:"last"`
	Pages []pageText `json:"pages"`
}

// pageText is one page of a chunk: its text with its page marker, as the
// model reads it, or Scanned for a page without a text layer that the map
// task renders. Map answers keep the pages they read in the same form, so
// the reduce can check quotes and --keep-text can write the text without
// extracting it again (Page 0: text without page markers).
type pageText struct {
	Page    int    `json:"page"`
	Text    string `json:"text,omitempty"`
	Scanned bool   `json:"scanned,omitempty"`
}

// pagesKey is the key of chunk index's kept page texts.
func pagesKey(p jobs.ItemPayload, index int) string {
	return workarea.ChunkKey(p.Batch, p.Item, index, "pages.json")
}

// keepPages writes the page texts of each planned range to the work area.
func (s *Stage) keepPages(ctx context.Context, it Item, doc docContent, ranges []pdfsplit.Range, chunks []chunktask.MapPayload) error {
	scanned := make(map[int]bool, len(doc.scanned))
	for _, sp := range doc.scanned {
		scanned[sp.page] = true
	}
	for i, r := range ranges {
		cp := chunkPages{V: 1, First: r.First, Last: r.Last, Pages: make([]pageText, 0, r.Last-r.First+1)}
		for page := r.First; page <= r.Last; page++ {
			j := page - doc.first
			if j < 0 || j >= len(doc.pageEnd) {
				return fmt.Errorf("page %d was not measured (pages %d-%d were)", page, doc.first, doc.first+len(doc.pageEnd)-1)
			}
			start := 0
			if j > 0 {
				start = doc.pageEnd[j-1]
			}
			cp.Pages = append(cp.Pages, pageText{Page: page, Text: doc.text[start:doc.pageEnd[j]], Scanned: scanned[page]})
		}
		b, err := json.Marshal(cp)
		if err != nil {
			return fmt.Errorf("encode the text of pages %d-%d: %w", r.First, r.Last, err)
		}
		key := pagesKey(it.Payload, chunks[i].Index)
		if err := stage.Put(ctx, it.Out, key, b, "application/json"); err != nil {
			return err
		}
	}
	return nil
}

// keptPages reads a PDF chunk's kept page texts and renders its pages
// without text (when the model reads images). ok is false when no page
// texts were kept for it.
func (s *Stage) keptPages(ctx context.Context, it Item, mp chunktask.MapPayload) (d docContent, ok bool, err error) {
	p := mp.Item
	key := pagesKey(p, mp.Index)
	b, err := stage.ReadAll(ctx, it.Out, key)
	if errors.Is(err, fs.ErrNotExist) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("read %s: %w", key, err)
	}
	var cp chunkPages
	if err := json.Unmarshal(b, &cp); err != nil || cp.V != 1 || cp.First != mp.Pages.First || cp.Last != mp.Pages.Last {
		it.Log.InfoContext(ctx, "kept page texts unusable: reading the PDF's pages", "key", key)
		return d, false, nil
	}
	var sb strings.Builder
	var scanned []int
	for _, pt := range cp.Pages {
		sb.WriteString(pt.Text)
		if pt.Scanned {
			scanned = append(scanned, pt.Page)
		}
	}
	d.text, d.first, d.pages = sb.String(), cp.First, mp.DocPages
	if len(scanned) == 0 {
		return d, true, nil
	}
	if it.Model.Profile().MaxImages == 0 {
		for _, page := range scanned { // listed, not rendered (mapAsk leaves them out)
			d.scanned = append(d.scanned, scannedPage{page: page})
		}
		return d, true, nil
	}
	d.scanned, err = s.renderScanned(ctx, it, mp, scanned)
	return d, true, err
}

// renderScanned renders the chunk's pages without text from its chunk PDF,
// or from the original when there is none or PDFium cannot read it.
func (s *Stage) renderScanned(ctx context.Context, it Item, mp chunktask.MapPayload, pages []int) ([]scannedPage, error) {
	if mp.Chunk != "" {
		data, err := stage.Read(ctx, it.Out, jobs.Ref{Location: mp.Item.Out, Key: mp.Chunk}, s.cfg.MaxInputBytes)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err == nil {
			want := mp.Pages.Last - mp.Pages.First + 1
			out, err := s.renderPages(ctx, data, "", mp.Pages.First-1, want, pages)
			if err == nil {
				return out, nil
			}
			it.Log.InfoContext(ctx, "chunk PDF unusable: rendering the original's pages", "reason", err.Error())
		}
	}
	data, err := it.ReadSource(ctx)
	if err != nil {
		return nil, err
	}
	return s.renderPages(ctx, data, s.password(mp.Item.Source), 0, 0, pages)
}

// renderPages opens a PDF whose page 1 is the original's page offset+1
// (with want pages, when not 0) and renders the original's pages given.
func (s *Stage) renderPages(ctx context.Context, data []byte, password string, offset, want int, pages []int) ([]scannedPage, error) {
	ex, err := s.pdfExtractor(ctx)
	if err != nil {
		return nil, err
	}
	doc, err := ex.Open(ctx, data, password)
	if err != nil {
		return nil, fmt.Errorf("open PDF: %w", err)
	}
	defer doc.Close()
	if n := doc.Pages(); want > 0 && n != want {
		return nil, fmt.Errorf("%d pages, want %d", n, want)
	}
	out := make([]scannedPage, 0, len(pages))
	for _, page := range pages {
		if i := page - offset; i < 1 || i > doc.Pages() {
			return nil, fmt.Errorf("page %d is not in this PDF", page)
		}
		sp, err := s.renderPage(ctx, doc, page-offset, offset)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}
