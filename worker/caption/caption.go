package caption

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/metrics"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Model is the model as this stage calls it (llm.Client has both methods).
type Model interface {
	Complete(ctx context.Context, req llm.Request) (llm.Response, error)
	Profile() llm.Profile
}

// Cache keeps captions by content and tenant, so identical bytes are
// captioned once per tenant (*jobs.Tracker has these methods). ContentScope
// names the tenant a batch's captions are kept for ("" for none).
type Cache interface {
	ContentScope(ctx context.Context, batch string) (string, error)
	CachedResult(ctx context.Context, tenant, key string) ([]byte, bool, error)
	StoreResult(ctx context.Context, tenant, key string, result []byte, ttl time.Duration) error
	ClaimResult(ctx context.Context, tenant, key, owner string, ttl time.Duration) (bool, error)
	ReleaseClaim(ctx context.Context, tenant, key, owner string) error
}

// Opener opens a storage location (product sidecars are read through it).
type Opener func(ctx context.Context, location string) (storage.Store, error)

// Config is the image stage's settings. Cache and Open are required.
type Config struct {
	// Cache keeps captions by content.
	Cache Cache
	// Open opens the locations of product sidecars.
	Open Opener
	// Prompts override embedded prompt templates by name. Nil: embedded.
	Prompts prompts.Set
	// Image configures image preparation; the model profile's limits are
	// applied on top (see ImageOptions).
	Image imageprep.Options
	// Slots is how many images are decoded at once; the other items wait
	// their turn. Zero means the number of CPUs.
	Slots int
	// Metrics records preparation times. Nil records nothing.
	Metrics *metrics.Metrics
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Stage captions images. It is safe for concurrent use.
type Stage struct {
	cfg      Config
	slots    chan struct{}
	products productTables
}

// New returns the image stage.
func New(cfg Config) (*Stage, error) {
	if cfg.Cache == nil || cfg.Open == nil {
		return nil, errors.New("caption: Cache and Open are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Stage{cfg: cfg, slots: make(chan struct{}, cmp.Or(cfg.Slots, runtime.NumCPU()))}, nil
}

// Item is one image item's work: its payload, where its result goes, the
// model to ask, a logger with the item's fields, and a way to read its
// source again (the source is let go while the model answers).
type Item struct {
	Payload    jobs.ItemPayload
	Out        storage.Store
	Model      Model
	Log        *slog.Logger
	ReadSource func(ctx context.Context) ([]byte, error)
	// Keep keeps the model's answer until the result is written (see
	// stage.Keeper). Zero: nothing is kept.
	Keep stage.Keeper
}

// ErrDuplicateInFlight: an identical image is being captioned by another
// task; retry shortly. The worker does not count it as a failure.
var ErrDuplicateInFlight = errors.New("an identical image is being captioned by another task: waiting for its result")

// ImageOptions applies a model profile's limits to image options: the
// encoded size cap and the pixel cap of one image (and a longest side of
// 1344 when o has none).
func ImageOptions(o imageprep.Options, prof llm.Profile) imageprep.Options {
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

// Caption prepares the item's image (data, its source's bytes) and asks
// the model for a caption JSON, written as <base>.caption.json.
func (s *Stage) Caption(ctx context.Context, it Item, data []byte) (stage.Outcome, error) {
	var o stage.Outcome
	p, out, log := it.Payload, it.Out, it.Log
	prof := it.Model.Profile()
	tmpl, err := s.cfg.Prompts.Load(prompts.Caption)
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	product, err := s.product(ctx, p)
	if err != nil {
		return o, err
	}
	user, err := tmpl.Render(prompts.CaptionData{Language: stage.Language(p.Options), Product: product})
	if err != nil {
		return o, fmt.Errorf("caption prompt: %w", err)
	}
	// Identical bytes are captioned once, in this batch or any other of
	// the same tenant: another tenant's caption is never reused, so
	// duplicate_of never names its object and a hit reveals nothing of it.
	tenant, err := s.cfg.Cache.ContentScope(ctx, p.Batch)
	if err != nil {
		return o, fmt.Errorf("caption cache: %w", err)
	}
	sum := sha256.Sum256(data)
	copts := p.Options
	if product != nil { // the same photo of two products gets two captions
		copts.Products = product.SKU + "\x00" + product.Name + "\x00" + product.Brand
	}
	ckey := fingerprint.ContentKey(hex.EncodeToString(sum[:]), p.Task, tmpl.Version, prof.Model, copts)
	if doc, from, ok, err := s.cachedUnlessKept(ctx, it, tenant, ckey); err != nil {
		return o, err
	} else if ok {
		key := jobs.ResultKey(p.ResultBase, jobs.SuffixCaptionJSON)
		m := stage.NewMeta(p, prof.Provider, tmpl.Version, o, 0, false, s.cfg.Now())
		m.Model, m.DuplicateOf, m.Product = from.Model, from.Source, productMeta(product)
		if err := stage.PutJSON(ctx, out, key, doc, m); err != nil {
			return o, err
		}
		log.InfoContext(ctx, "identical image captioned before: result reused", "duplicate_of", from.Source)
		o.Results, o.Model = []string{key}, from.Model
		return o, nil
	}
	owner := p.Batch + "/" + p.Item
	claimed, err := s.cfg.Cache.ClaimResult(ctx, tenant, ckey, owner, jobs.ContentClaimTTL)
	if err != nil {
		return o, err
	}
	if !claimed {
		// Another item with the same bytes is being captioned right now:
		// come back when its result is there (not counted as a failure).
		return o, ErrDuplicateInFlight
	}
	releaseClaim := true
	defer func() {
		if releaseClaim {
			_ = s.cfg.Cache.ReleaseClaim(context.WithoutCancel(ctx), tenant, ckey, owner)
		}
	}()
	a, err := s.keptOrAsk(ctx, it, tmpl, user, data, &o)
	if err != nil || o.Skipped != "" {
		return o, err
	}
	key := jobs.ResultKey(p.ResultBase, jobs.SuffixCaptionJSON)
	m := stage.NewMeta(p, prof.Provider, tmpl.Version, o, a.Calls, a.Usage.Estimated, s.cfg.Now())
	m.Frame, m.Product = o.Frame, productMeta(product)
	if err := stage.PutJSON(ctx, out, key, a.Doc, m); err != nil {
		return o, err
	}
	o.Results = []string{key}
	if err := s.storeCaption(ctx, tenant, ckey, a.Doc, cacheSource{Source: p.Source.URL(), Model: o.Model}); err != nil {
		return o, err
	}
	releaseClaim = false
	return o, nil
}

type cacheSource struct {
	Source string `json:"source"`
	Model  string `json:"model"`
}

type cachedDoc struct {
	From cacheSource    `json:"from"`
	Doc  map[string]any `json:"doc"`
}

func (s *Stage) cachedCaption(ctx context.Context, tenant, key string) (map[string]any, cacheSource, bool, error) {
	b, ok, err := s.cfg.Cache.CachedResult(ctx, tenant, key)
	if err != nil || !ok {
		return nil, cacheSource{}, false, err
	}
	var c cachedDoc
	if err := json.Unmarshal(b, &c); err != nil || c.Doc == nil {
		return nil, cacheSource{}, false, nil // unreadable: caption again
	}
	return c.Doc, c.From, true, nil
}

func (s *Stage) storeCaption(ctx context.Context, tenant, key string, doc map[string]any, from cacheSource) error {
	b, err := json.Marshal(cachedDoc{From: from, Doc: doc})
	if err != nil {
		return fmt.Errorf("cache caption: %w", err)
	}
	return s.cfg.Cache.StoreResult(ctx, tenant, key, b, jobs.ContentResultTTL)
}

// prepareImage prepares an image in one of the stage's decode slots:
// decoding is CPU-bound, so more decodes at once than CPUs only add memory.
func (s *Stage) prepareImage(ctx context.Context, data []byte, opts imageprep.Options) (*imageprep.Result, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.slots }()
	t0 := time.Now()
	ctx, span := tracing.Start(ctx, tracing.SpanPrepare)
	defer span.End()
	img, err := imageprep.Prepare(ctx, data, opts)
	s.cfg.Metrics.ImagePrepared(time.Since(t0))
	return img, err
}

// imageError marks image preparation failures of bad input as permanent.
// The imageprep sentinels already name the problem ("image too large: ...",
// "corrupt image: ..."), so the message is kept as it is.
func imageError(err error) error {
	if errors.Is(err, imageprep.ErrUnsupported) || errors.Is(err, imageprep.ErrTooLarge) || errors.Is(err, imageprep.ErrCorrupt) {
		return stage.Permanent(err.Error(), err)
	}
	return err
}
