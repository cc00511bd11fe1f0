package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// imageOptions applies the model profile's limits to the configured image
// options: the encoded size cap and the pixel cap of one image.
func (w *Worker) imageOptions() imageprep.Options {
	o := w.cfg.Image
	prof := w.cfg.Model.Profile()
	if prof.MaxImageBytes > 0 && (o.MaxBytes == 0 || prof.MaxImageBytes < o.MaxBytes) {
		o.MaxBytes = prof.MaxImageBytes
	}
	if o.MaxSide == 0 {
		o.MaxSide = 1344
	}
	if prof.MaxImagePixels > 0 {
		// The output is at most MaxSide×MaxSide: keep it under the pixel cap.
		if side := int(math.Sqrt(float64(prof.MaxImagePixels))); side < o.MaxSide {
			o.MaxSide = side
		}
	}
	return o
}

// caption prepares an image and asks the model for a caption JSON.
func (w *Worker) caption(ctx context.Context, log *slog.Logger, p jobs.ItemPayload, data []byte, out storage.Store) (outcome, error) {
	var o outcome
	tmpl, err := prompts.Load(prompts.Caption)
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	user, err := tmpl.Render(prompts.CaptionData{Language: language(p.Options)})
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	opts := w.imageOptions()
	var a answer
	for shrink := 0; ; shrink++ {
		img, err := imageprep.Prepare(ctx, data, opts)
		if err != nil {
			return o, imageError(err)
		}
		log.DebugContext(ctx, "image prepared", "width", img.Width, "height", img.Height, "bytes", len(img.JPEG), "orientation", img.Orientation)
		req := llm.Request{
			System:          tmpl.System,
			Parts:           []llm.Part{{Text: user}, {Image: &llm.Image{MIME: "image/jpeg", Data: img.JPEG, Width: img.Width, Height: img.Height}}},
			MaxOutputTokens: p.Options.MaxOutputTokens,
		}
		a, err = w.ask(ctx, tmpl, req, out, p.ResultBase)
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
		o.add(a, w.cfg.Model.Profile().Prices)
		if err != nil {
			return o, err
		}
		break
	}
	key := jobs.ResultKey(p.ResultBase, jobs.SuffixCaptionJSON)
	if err := putJSON(ctx, out, key, a.doc, w.meta(p, tmpl, o, a.calls, a.usage.Estimated)); err != nil {
		return o, err
	}
	o.results = []string{key}
	return o, nil
}

// imageError turns an image preparation error into a reason for people.
func imageError(err error) error {
	switch {
	case errors.Is(err, imageprep.ErrUnsupported):
		return permanent("unsupported image: "+err.Error(), err)
	case errors.Is(err, imageprep.ErrTooLarge):
		return permanent("image too large: "+err.Error(), err)
	case errors.Is(err, imageprep.ErrCorrupt):
		return permanent("damaged image: "+err.Error(), err)
	}
	return err
}
