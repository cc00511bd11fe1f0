package document

// --keep-text (jobs.Options.KeepText): a document's extracted text is
// written beside its digest from the text already extracted for the model
// (the item task's text, or the pages the map tasks kept in their
// answers), never extracted again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// maxChunkRunes caps one search chunk of <file>.chunks.jsonl.
const maxChunkRunes = 1200

// textChunk is one line of <file>.chunks.jsonl: a piece of one page's text
// (Page 0: a document without pages).
type textChunk struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Page   int    `json:"page,omitempty"`
	Chunk  int    `json:"chunk"`
	Text   string `json:"text"`
}

// keepText writes <base>.text.md (the pages as the model saw them, with
// their markers; a scanned page is named as read from its image) and
// <base>.chunks.jsonl, and adds them to the outcome's results.
func (s *summarizer) keepText(ctx context.Context, pages []pageText, scanned []int) error {
	p := s.it.Payload
	all := append([]pageText(nil), pages...)
	for _, n := range scanned {
		all = append(all, pageText{Page: n, Text: "(scanned page: no text layer; the model read it as an image)"})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Page < all[j].Page })

	var md, jl bytes.Buffer
	enc := json.NewEncoder(&jl)
	enc.SetEscapeHTML(false)
	src := p.Source.URL()
	for _, pg := range all {
		text := strings.TrimSpace(pg.Text)
		if pg.Page > 0 {
			md.WriteString(prompts.PageMarker(pg.Page) + "\n")
		}
		md.WriteString(text + "\n\n")
		for i, c := range splitChunks(text, maxChunkRunes) {
			id := fmt.Sprintf("%s#chunk=%d", p.ResultBase, i+1)
			if pg.Page > 0 {
				id = fmt.Sprintf("%s#page=%d&chunk=%d", p.ResultBase, pg.Page, i+1)
			}
			if err := enc.Encode(textChunk{ID: id, Source: src, Page: pg.Page, Chunk: i + 1, Text: c}); err != nil {
				return fmt.Errorf("encode chunk: %w", err)
			}
		}
	}
	mdKey := jobs.ResultKey(p.ResultBase, jobs.SuffixTextMD)
	jlKey := jobs.ResultKey(p.ResultBase, jobs.SuffixChunksJSONL)
	if err := stage.PutGroup(ctx, s.it.Out, []storage.Object{{Key: mdKey, Data: md.Bytes(), ContentType: "text/markdown; charset=utf-8"},
		{Key: jlKey, Data: jl.Bytes(), ContentType: "application/x-ndjson"}}); err != nil {
		return err
	}
	s.o.Results = append(s.o.Results, mdKey, jlKey)
	return nil
}

// splitChunks cuts text into pieces of at most max runes, at paragraph
// breaks, else line breaks, else spaces.
func splitChunks(text string, max int) []string {
	var out []string
	for text != "" {
		r := []rune(text)
		if len(r) <= max {
			out = append(out, text)
			break
		}
		head := string(r[:max])
		cut := -1
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(head, sep); i > len(head)/3 {
				cut = i
				break
			}
		}
		if cut < 0 {
			cut = len(head)
		}
		if c := strings.TrimSpace(text[:cut]); c != "" {
			out = append(out, c)
		}
		text = strings.TrimSpace(text[cut:])
	}
	return out
}
