package caption

import (
	"context"
	"errors"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// keptAnswer names the caption's answer among the item's kept answers.
const keptAnswer = "caption"

// keptOrAsk returns the caption answer an earlier attempt of the item kept
// (its result write failed: the model is not asked again, and o carries
// that call's tokens and cost), else asks the model (ask) and keeps the
// answer before the result is written. o.Skipped set means the image is
// skipped.
func (s *Stage) keptOrAsk(ctx context.Context, it Item, tmpl *prompts.Template, user string, data []byte, o *stage.Outcome) (stage.Answer, error) {
	kept, ok, err := it.Keep.Load(ctx, keptAnswer)
	if err != nil {
		return stage.Answer{}, err
	}
	if ok {
		kept.Restore(o)
		o.Kept, o.KeptInWorkArea = append(o.Kept, keptAnswer), o.KeptInWorkArea || kept.InWorkArea
		it.Log.InfoContext(ctx, "model answer kept by an earlier attempt: writing the result without asking again")
		return kept.Answer, nil
	}
	a, err := s.ask(ctx, it, tmpl, user, data, o)
	if err != nil || o.Skipped != "" {
		return a, err
	}
	o.Kept = append(o.Kept, keptAnswer)
	if it.Keep.Keep(ctx, keptAnswer, stage.Kept{Answer: a, Outcome: *o, Requests: a.Calls, Estimated: a.Usage.Estimated}) {
		o.KeptInWorkArea = true
	}
	return a, nil
}

// cachedUnlessKept is cachedCaption, unless an earlier attempt of this
// item kept its own answer (its result was written or not, the item was
// not recorded): then that answer is used, its call charged with the item,
// and the result never names the item's own source as duplicate_of.
func (s *Stage) cachedUnlessKept(ctx context.Context, it Item, tenant, key string) (map[string]any, cacheSource, bool, error) {
	doc, from, ok, err := s.cachedCaption(ctx, tenant, key)
	if err != nil || !ok {
		return doc, from, ok, err
	}
	if _, kept, kerr := it.Keep.Load(ctx, keptAnswer); kerr == nil && kept {
		return nil, cacheSource{}, false, nil
	}
	return doc, from, true, nil
}

// ask prepares the image (data, its source's bytes; read again through
// it.ReadSource when nil) and asks the model for its caption, once more
// with the image halved when the provider finds it too large. An image in
// a format we cannot decode sets o.Skipped.
func (s *Stage) ask(ctx context.Context, it Item, tmpl *prompts.Template, user string, data []byte, o *stage.Outcome) (stage.Answer, error) {
	p, out, log := it.Payload, it.Out, it.Log
	prof := it.Model.Profile()
	opts := ImageOptions(s.cfg.Image, prof)
	var a stage.Answer
	var err error
	for shrink := 0; ; shrink++ {
		if data == nil { // the source was let go after the first preparation
			if data, err = it.ReadSource(ctx); err != nil {
				return a, err
			}
		}
		img, err := s.prepareImage(ctx, data, opts)
		// The source (up to tens of MB) is not kept while the model answers.
		data = nil
		if errors.Is(err, imageprep.ErrUnsupported) {
			// A format we cannot decode is skipped, with the reason.
			o.Skipped = err.Error() + ": convert it to JPEG or PNG"
			return a, nil
		}
		if err != nil {
			return a, imageError(err)
		}
		log.DebugContext(ctx, "image prepared", "width", img.Width, "height", img.Height, "bytes", len(img.JPEG), "orientation", img.Orientation)
		o.Frame = img.FirstFrame
		image := &llm.Image{MIME: "image/jpeg", Data: img.JPEG, Width: img.Width, Height: img.Height}
		removeImage, err := s.byURL(ctx, it, image)
		if err != nil {
			return a, err
		}
		req := llm.Request{
			System:          tmpl.System,
			Parts:           []llm.Part{{Text: user}, {Image: image}},
			MaxOutputTokens: p.Options.MaxOutputTokens,
		}
		a, err = stage.Ask(ctx, it.Model, tmpl, req, out, p.ResultBase)
		removeImage()
		if err != nil && llm.KindOf(err) == llm.TooLarge && shrink == 0 {
			// The provider found the image too large: halve it once and retry.
			opts.MaxSide = max(img.Width, img.Height) / 2
			if opts.MaxBytes > 0 {
				opts.MaxBytes /= 2
			} else {
				opts.MaxBytes = len(img.JPEG) / 2
			}
			log.InfoContext(ctx, "image too large for the provider: retrying smaller", "max_side", opts.MaxSide)
			continue
		}
		o.Add(a, prof.Prices)
		return a, err
	}
}
