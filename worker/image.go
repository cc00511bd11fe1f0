package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

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
	tmpl, err := w.cfg.Prompts.Load(prompts.Caption)
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	product, err := w.product(ctx, p)
	if err != nil {
		return o, err
	}
	user, err := tmpl.Render(prompts.CaptionData{Language: language(p.Options), Product: product})
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	// Identical bytes are captioned once, in this batch or any other.
	sum := sha256.Sum256(data)
	copts := p.Options
	if product != nil { // the same photo of two products gets two captions
		copts.Products = product.SKU + "\x00" + product.Name + "\x00" + product.Brand
	}
	ckey := jobs.ContentKey(hex.EncodeToString(sum[:]), p.Task, tmpl.Version, w.cfg.Model.Profile().Model, copts)
	if doc, from, ok, err := w.cachedCaption(ctx, ckey); err != nil {
		return o, err
	} else if ok {
		key := jobs.ResultKey(p.ResultBase, jobs.SuffixCaptionJSON)
		m := w.meta(p, tmpl, o, 0, false)
		m.Model, m.DuplicateOf = from.Model, from.Source
		if err := putJSON(ctx, out, key, doc, m); err != nil {
			return o, err
		}
		log.InfoContext(ctx, "identical image captioned before: result reused", "duplicate_of", from.Source)
		o.results, o.model = []string{key}, from.Model
		return o, nil
	}
	owner := p.Batch + "/" + p.Item
	claimed, err := w.cfg.Tracker.ClaimResult(ctx, ckey, owner, 10*time.Minute)
	if err != nil {
		return o, err
	}
	if !claimed {
		// Another item with the same bytes is being captioned right now:
		// come back when its result is there (not counted as a failure).
		return o, errDuplicateInFlight
	}
	releaseClaim := true
	defer func() {
		if releaseClaim {
			_ = w.cfg.Tracker.ReleaseClaim(context.WithoutCancel(ctx), ckey, owner)
		}
	}()
	opts := w.imageOptions()
	var a answer
	for shrink := 0; ; shrink++ {
		if data == nil { // the source was let go after the first preparation
			if data, err = w.reread(ctx, p); err != nil {
				return o, err
			}
		}
		img, err := w.prepareImage(ctx, data, opts)
		// The source (up to tens of MB) is not kept while the model answers.
		data = nil
		if errors.Is(err, imageprep.ErrUnsupported) {
			// A format we cannot decode is skipped, with the reason.
			o.skipped = err.Error() + ": convert it to JPEG or PNG"
			return o, nil
		}
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
	if err := w.storeCaption(ctx, ckey, a.doc, cacheSource{Source: p.Source.URL(), Model: o.model}); err != nil {
		return o, err
	}
	releaseClaim = false
	return o, nil
}

// errDuplicateInFlight: an identical image is being captioned by another
// task; retry shortly. It is not a failure (see isFailure).
var errDuplicateInFlight = errors.New("an identical image is being captioned by another task: waiting for its result")

// contentTTL is how long a caption is kept by content for reuse.
const contentTTL = 30 * 24 * time.Hour

type cacheSource struct {
	Source string `json:"source"`
	Model  string `json:"model"`
}

type cachedDoc struct {
	From cacheSource    `json:"from"`
	Doc  map[string]any `json:"doc"`
}

func (w *Worker) cachedCaption(ctx context.Context, key string) (map[string]any, cacheSource, bool, error) {
	b, ok, err := w.cfg.Tracker.CachedResult(ctx, key)
	if err != nil || !ok {
		return nil, cacheSource{}, false, err
	}
	var c cachedDoc
	if err := json.Unmarshal(b, &c); err != nil || c.Doc == nil {
		return nil, cacheSource{}, false, nil // unreadable: caption again
	}
	return c.Doc, c.From, true, nil
}

func (w *Worker) storeCaption(ctx context.Context, key string, doc map[string]any, from cacheSource) error {
	b, err := json.Marshal(cachedDoc{From: from, Doc: doc})
	if err != nil {
		return fmt.Errorf("cache caption: %w", err)
	}
	return w.cfg.Tracker.StoreResult(ctx, key, b, contentTTL)
}

// prepareImage prepares an image in one of the worker's image slots: decoding
// is CPU-bound, so more decodes at once than CPUs only add memory.
func (w *Worker) prepareImage(ctx context.Context, data []byte, opts imageprep.Options) (*imageprep.Result, error) {
	select {
	case w.imageSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-w.imageSlots }()
	t0 := time.Now()
	img, err := imageprep.Prepare(ctx, data, opts)
	w.cfg.Metrics.ImagePrepared(time.Since(t0))
	return img, err
}

// reread fetches an item's source again.
func (w *Worker) reread(ctx context.Context, p jobs.ItemPayload) ([]byte, error) {
	src, err := w.stores.get(ctx, p.Source.Location)
	if err != nil {
		return nil, err
	}
	return w.read(ctx, src, p.Source)
}

// imageError marks image preparation failures of bad input as permanent.
// The imageprep sentinels already name the problem ("image too large: ...",
// "corrupt image: ..."), so the message is kept as it is.
func imageError(err error) error {
	if errors.Is(err, imageprep.ErrUnsupported) || errors.Is(err, imageprep.ErrTooLarge) || errors.Is(err, imageprep.ErrCorrupt) {
		return permanent(err.Error(), err)
	}
	return err
}
