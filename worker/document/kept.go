package document

import (
	"context"
	"fmt"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Names of a document's answers among the item's kept answers (see
// stage.Keeper): the digest of a document in one request, and the final
// answer of a long document's reduce.
const (
	keptSummary = "summary"
	keptReduce  = "reduce"
)

// keptOr returns the answer an earlier attempt of the item kept under name
// (its digest write failed: the model is not asked again, and the outcome
// carries the tokens and cost of the calls made then), with prompt's
// template; else it runs ask and keeps its answer before the digest is
// written.
func (s *summarizer) keptOr(ctx context.Context, name, prompt string, ask func() (*prompts.Template, stage.Answer, error)) (*prompts.Template, stage.Answer, error) {
	kept, ok, err := s.it.Keep.Load(ctx, name)
	if err != nil {
		return nil, stage.Answer{}, err
	}
	if ok {
		tmpl, err := s.st.cfg.Prompts.Load(prompt)
		if err != nil {
			return nil, stage.Answer{}, fmt.Errorf("%s prompt: %w", prompt, err)
		}
		kept.Restore(s.o)
		s.o.Kept, s.o.KeptInWorkArea = append(s.o.Kept, name), s.o.KeptInWorkArea || kept.InWorkArea
		s.requests, s.estimated = kept.Requests, kept.Estimated
		s.it.Log.InfoContext(ctx, "model answer kept by an earlier attempt: writing the digest without asking again", "answer", name)
		return tmpl, kept.Answer, nil
	}
	tmpl, a, err := ask()
	if err != nil {
		return tmpl, a, err
	}
	s.o.Kept = append(s.o.Kept, name)
	if s.it.Keep.Keep(ctx, name, stage.Kept{Answer: a, Outcome: *s.o, Requests: s.requests, Estimated: s.estimated}) {
		s.o.KeptInWorkArea = true
	}
	return tmpl, a, nil
}
