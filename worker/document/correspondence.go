package document

import (
	"context"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/evidence"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// An email message (file type eml: its header block and text body, as
// extract.Mail gives them; its attachments are items of their own) is
// correspondence, not a contract: it is summarized in one request with the
// correspondence template (prompts.Correspondence, schema
// correspondence_digest), whose quotes are checked like a contract
// digest's. Its results keep the names every document's have
// (<base>.summary.json and .summary.md). A message too long for one
// request is not mapped and reduced (those prompts are the contract's):
// the model reads its header block and the start of its body, and the
// digest says so (KeyTruncated).

// KeyTruncated is a correspondence digest's note when the message was
// longer than one request carries and only its start was read.
const KeyTruncated = "truncated"

// singlePrompt is the template and its data for a document in one request.
func (s *summarizer) singlePrompt() (string, any) {
	if s.mail {
		return prompts.Correspondence, prompts.CorrespondenceData{Language: s.lang, Title: s.title}
	}
	return prompts.Summary, prompts.SummaryData{Language: s.lang, Title: s.title, Pages: s.pages}
}

// quoteSummary is "3 of 3 quotes found on their pages" (a message's: "in
// the message").
func (s *summarizer) quoteSummary(c evidence.Counts) string {
	if s.mail {
		return strings.Replace(c.String(), "on their pages", "in the message", 1)
	}
	return c.String()
}

// schemaVersion is the schema version the digest's quote check names.
func (s *summarizer) schemaVersion() string {
	if s.mail {
		return prompts.CorrespondenceSchemaVersion
	}
	return prompts.DigestSchemaVersion
}

// correspondence writes an email message's correspondence digest.
func (s *Stage) correspondence(ctx context.Context, sm *summarizer, text string) error {
	sm.mail = true
	cut := cutToBudget(text, sm.budget)
	truncated := len(cut) < len(text)
	if truncated {
		sm.it.Log.InfoContext(ctx, "email message longer than one request: reading its start", "tokens", chunk.EstimateTokens(text), "budget", sm.budget)
	}
	tmpl, final, err := sm.keptOr(ctx, keptSummary, prompts.Correspondence, func() (*prompts.Template, stage.Answer, error) {
		return sm.single(ctx, cut)
	})
	if err != nil {
		return err
	}
	if truncated {
		final.Doc[KeyTruncated] = fmt.Sprintf("the message is longer than one request carries: only its first %d of %d characters were read",
			len(cut), len(text))
	}
	if err := sm.writeDigest(ctx, tmpl, final); err != nil {
		return err
	}
	if sm.it.Payload.Options.KeepText {
		return sm.keepText(ctx, []pageText{{Text: text}}, nil)
	}
	return nil
}

// cutToBudget returns the longest start of text, ending at a line break
// when one is near, whose estimated tokens fit budget.
func cutToBudget(text string, budget int) string {
	if budget <= 0 || chunk.EstimateTokens(text) <= budget {
		return text
	}
	lo, hi := 0, len(text) // the longest prefix that fits is in [lo, hi)
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if chunk.EstimateTokens(text[:mid]) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	cut := strings.ToValidUTF8(text[:lo], "")
	if i := strings.LastIndexByte(cut, '\n'); i > len(cut)*3/4 {
		cut = cut[:i+1]
	}
	return cut
}
