package document

import (
	"context"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/evidence"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// KeyQuoteCheck is the digest's key for its quote counts (evidence.Counts
// plus the schema version and whether the model was asked again).
const KeyQuoteCheck = "quote_check"

// maxNoted caps the quotes named in the request that asks again.
const maxNoted = 20

// checkQuotes checks the digest's quotes against src. When some are not
// found on their pages, the model is asked once more (again, with a note
// naming them) and the answer with fewer quotes not found is kept; its
// quotes still not found are flagged. A failed second request keeps the
// first answer (it is paid for), unless the item was cancelled.
func (s *summarizer) checkQuotes(ctx context.Context, src *evidence.Source, a stage.Answer, again func(note string) (stage.Answer, error)) (stage.Answer, error) {
	_, bad := evidence.Annotate(a.Doc, src, false)
	asked := false
	if len(bad) > 0 && again != nil {
		asked = true
		b, err := again(retryNote(bad, s.mail))
		switch {
		case ctx.Err() != nil:
			return a, ctx.Err()
		case err != nil:
			s.it.Log.WarnContext(ctx, "second request for quotes not found failed: keeping the first answer", "error", err.Error())
		default:
			if _, bad2 := evidence.Annotate(b.Doc, src, false); len(bad2) < len(bad) {
				b.Usage.Estimated = b.Usage.Estimated || a.Usage.Estimated
				a = b
			}
		}
	}
	c, _ := evidence.Annotate(a.Doc, src, true)
	if c.Unverified > 0 {
		s.it.Log.InfoContext(ctx, "quotes not found on their pages", "quotes", c.Quotes, "unverified", c.Unverified)
	}
	a.Doc[KeyQuoteCheck] = map[string]any{
		"schema": s.schemaVersion(), "quotes": c.Quotes, "verified": c.Verified,
		"unverified": c.Unverified, "unverifiable": c.Unverifiable, "asked_again": asked,
		"summary": s.quoteSummary(c),
	}
	return a, nil
}

// retryNote asks for the quotes not found, naming them.
func retryNote(bad []evidence.Unverified, mail bool) string {
	var sb strings.Builder
	if mail {
		sb.WriteString("Some quotes in your answer were not found word for word in the message:\n")
	} else {
		sb.WriteString("Some quotes in your answer were not found word for word on the pages they cite:\n")
	}
	for i, u := range bad {
		if i == maxNoted {
			fmt.Fprintf(&sb, "- … and %d more\n", len(bad)-maxNoted)
			break
		}
		q := u.Quote
		if q == "" {
			q = "(no quote)"
		}
		if mail {
			fmt.Fprintf(&sb, "- %s: %q\n", u.Field, q)
		} else {
			fmt.Fprintf(&sb, "- %s: %q (pages %v)\n", u.Field, q, u.Pages)
		}
	}
	if mail {
		sb.WriteString("Answer again with the whole JSON object. Copy every quote exactly from the message; leave an item out when the message does not state it.")
		return sb.String()
	}
	sb.WriteString("Answer again with the whole JSON object. Copy every quote exactly from the document text, with the pages of its [page N] markers; leave a field empty when the document does not state it.")
	return sb.String()
}

// withNote is req with a note appended as a last instruction part.
func withNote(req llm.Request, note string) llm.Request {
	req.Parts = append(append([]llm.Part{}, req.Parts...), llm.Part{Text: note})
	return req
}

// pagesOf splits text with page markers into pages.
func pagesOf(text string) []pageText {
	var out []pageText
	for _, p := range prompts.SplitPages(text) {
		out = append(out, pageText{Page: p.Page, Text: p.Text})
	}
	return out
}

// sourceOf builds the quote check's source from map answers' pages.
func sourceOf(results []mapResult) *evidence.Source {
	src := &evidence.Source{Pages: map[int]string{}, Scanned: map[int]bool{}}
	for _, r := range results {
		for _, p := range r.Text {
			if prev, ok := src.Pages[p.Page]; ok {
				src.Pages[p.Page] = prev + "\n" + p.Text
			} else {
				src.Pages[p.Page] = p.Text
			}
		}
		for _, p := range r.Scanned {
			src.Scanned[p] = true
		}
	}
	return src
}
