package planner

import (
	"bytes"
	"context"
	"image"
	_ "image/gif" // image headers for planning
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"sync"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/pdfsplit"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Planning assumptions, in tokens. They are estimates, and the report after
// a run has the real numbers.
const (
	TokensPerPDFPage = 550  // a dense contract page
	PromptTokens     = 500  // instructions and schema of one request
	SummaryOutput    = 1500 // a contract digest
	MapOutput        = 700  // the facts of one chunk
	CaptionOutput    = 350  // one caption JSON

	imageHeaderMaxLen = 256 << 10
)

// DefaultSample is how many items are estimated exactly when
// Options.Sample is zero.
const DefaultSample = 500

// DefaultImageMaxSide is the long side images are fitted to when
// Options.ImageMaxSide is zero (the workers' default).
const DefaultImageMaxSide = 1344

// Options tune an estimate.
type Options struct {
	// MaxOutputTokens is the batch's answer cap (it sizes document chunks).
	// Zero: the profile's.
	MaxOutputTokens int
	// ImageMaxSide is the long side, in pixels, images are sent at. Zero
	// means DefaultImageMaxSide; negative: images are sent as they are.
	ImageMaxSide int
	// PDFPasswords maps a source key (or full URL) to its PDF password.
	PDFPasswords map[string]string
	// Sample is how many items are estimated exactly (documents read,
	// image headers decoded); the rest are extrapolated from their size,
	// per kind. The first item of each kind is always estimated exactly,
	// so Plan.Sampled may exceed Sample by the number of kinds. Zero means
	// DefaultSample; negative: every item exactly.
	Sample int
}

// Item is the estimate of one item.
type Item struct {
	Kind     string
	Size     int64
	Pages    int
	Images   int
	Requests int
	Usage    llm.Usage
	// Skip is why the item would not be processed ("" if it would).
	Skip string
}

// Totals add up the items to be processed (of one kind, or all).
type Totals struct {
	Items        int   `json:"items"`
	Pages        int   `json:"pages"`
	Images       int   `json:"images"`
	Requests     int   `json:"requests"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// ImageTokens is the part of InputTokens that are image tiles.
	ImageTokens int64 `json:"image_tokens"`
	// Cost is the online price under the profile's prices (0 without).
	Cost float64 `json:"cost"`
	// BatchCost is the price through the provider's batch API, when the
	// profile has a batch discount.
	BatchCost *float64 `json:"batch_cost,omitempty"`
}

// Plan is a batch's estimate.
type Plan struct {
	// Profile names the model profile priced (its preset name, else its
	// provider); Provider and Model are the profile's.
	Profile  string `json:"profile"`
	Provider string `json:"provider"`
	Model    string `json:"model,omitempty"`
	// Currency of the costs; Priced is false when the profile has no
	// prices (every cost is then 0).
	Currency string `json:"currency,omitempty"`
	Priced   bool   `json:"priced"`
	// Total is how many items the batch holds; Skipped how many of them
	// would not be processed, by reason in Skips.
	Total   int            `json:"total"`
	Skipped int            `json:"skipped"`
	Skips   map[string]int `json:"skips,omitempty"`
	// Kinds are the totals of the items to be processed by kind; All the
	// totals over every kind.
	Kinds map[string]Totals `json:"kinds"`
	All   Totals            `json:"all"`
	// Sampled is how many items were estimated exactly; Extrapolated is
	// true when the others' numbers were scaled from them by size.
	Sampled      int  `json:"sampled"`
	Extrapolated bool `json:"extrapolated"`
}

// Estimate lists what a batch with options o would hold (through in.Scan,
// which needs only in.Open) and estimates its requests, tokens and cost
// under prof. It sends nothing and writes nothing.
func Estimate(ctx context.Context, in *ingest.Ingester, o ingest.Options, prof llm.Profile, opts Options) (Plan, error) {
	sample := opts.Sample
	switch {
	case sample == 0:
		sample = DefaultSample
	case sample < 0:
		sample = math.MaxInt
	}
	maxSide := opts.ImageMaxSide
	switch {
	case maxSide == 0:
		maxSide = DefaultImageMaxSide
	case maxSide < 0:
		maxSide = 0
	}
	budget := worker.TextBudget(prof, cmpOr(opts.MaxOutputTokens, o.Job.MaxOutputTokens))
	var (
		mu     sync.Mutex
		exact  []Item
		rest   []Item // to be extrapolated
		kinds  = map[string]bool{}
		picked int
	)
	total, err := in.Scan(ctx, o, func(it ingest.Item) error {
		e := Item{Kind: it.Kind, Size: it.Ref.Size, Skip: it.Skip}
		if it.Unchanged {
			e.Skip = "unchanged since the last run (results kept)"
		}
		mu.Lock()
		sampled := e.Skip != "" || picked < sample || !kinds[e.Kind]
		if e.Skip == "" && sampled {
			picked++
			kinds[e.Kind] = true
		}
		mu.Unlock()
		if sampled && e.Skip == "" {
			e = EstimateItem(ctx, it, budget, maxSide, opts.PDFPasswords)
		}
		mu.Lock()
		defer mu.Unlock()
		if sampled {
			exact = append(exact, e)
		} else {
			rest = append(rest, e)
		}
		return nil
	})
	if err != nil {
		return Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return Plan{}, err
	}
	return summarize(prof, total, picked, exact, rest), nil
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// EstimateItem estimates one listed item: documents are read (PDF pages ×
// TokensPerPDFPage, else the extracted text's tokens, mapped and reduced in
// chunks of budget tokens), images are fitted to maxSide (0: as they are)
// and counted in Llama 4 tiles. An item that cannot be read gets a Skip
// reason starting "would fail: ".
func EstimateItem(ctx context.Context, it ingest.Item, budget, maxSide int, passwords map[string]string) Item {
	e := Item{Kind: it.Kind, Size: it.Ref.Size, Skip: it.Skip}
	if it.Unchanged {
		e.Skip = "unchanged since the last run (results kept)"
	}
	if e.Skip != "" {
		return e
	}
	switch it.Kind {
	case jobs.KindImage:
		w, h := imageSize(ctx, it)
		if m := max(w, h); m > maxSide && maxSide > 0 {
			w, h = w*maxSide/m, h*maxSide/m
		}
		img := llm.EstimateImageTokens(w, h)
		e.Images, e.Requests = 1, 1
		e.Usage = llm.Usage{InputTokens: img + PromptTokens, ImageTokens: img, OutputTokens: CaptionOutput}
	case jobs.KindDocument:
		tokens, pages, err := documentTokens(ctx, it, passwords)
		if err != nil {
			e.Skip = "would fail: " + err.Error()
			return e
		}
		e.Pages = pages
		if tokens <= budget {
			e.Requests = 1
			e.Usage = llm.Usage{InputTokens: tokens + PromptTokens, OutputTokens: SummaryOutput}
			break
		}
		chunks := (tokens + budget - 1) / budget
		reduces := 1 + chunks*MapOutput/budget
		e.Requests = chunks + reduces
		e.Usage = llm.Usage{
			InputTokens:  tokens + chunks*PromptTokens + chunks*MapOutput + reduces*PromptTokens,
			OutputTokens: chunks*MapOutput + reduces*SummaryOutput,
		}
	}
	e.Usage.Estimated = true
	return e
}

// summarize adds up the exact estimates and scales each kind's sampled
// numbers, per byte, to the items that were not sampled.
func summarize(prof llm.Profile, total, picked int, exact, rest []Item) Plan {
	p := Plan{Profile: prof.Preset, Provider: prof.Provider, Model: prof.Model, Currency: prof.Prices.Currency,
		Priced: prof.Prices.InputPerMillion > 0 || prof.Prices.OutputPerMillion > 0 || prof.Prices.ImagePerThousand > 0,
		Total:  total, Kinds: map[string]Totals{}, Sampled: picked, Extrapolated: len(rest) > 0}
	if p.Profile == "" {
		p.Profile = prof.Provider
	}
	type acc struct {
		Totals
		size int64
	}
	sums := map[string]*acc{}
	get := func(kind string) *acc {
		a := sums[kind]
		if a == nil {
			a = &acc{}
			sums[kind] = a
		}
		return a
	}
	for _, e := range exact {
		if e.Skip != "" {
			if p.Skips == nil {
				p.Skips = map[string]int{}
			}
			p.Skips[e.Skip]++
			p.Skipped++
			continue
		}
		a := get(e.Kind)
		a.Items++
		a.size += e.Size
		a.Pages += e.Pages
		a.Images += e.Images
		a.Requests += e.Requests
		a.InputTokens += int64(e.Usage.InputTokens)
		a.OutputTokens += int64(e.Usage.OutputTokens)
		a.ImageTokens += int64(e.Usage.ImageTokens)
	}
	// Extrapolate by kind: the sample's numbers per byte times the size of
	// the items not sampled (per item when sizes are unknown).
	restSize, restItems := map[string]int64{}, map[string]int{}
	for _, e := range rest {
		restSize[e.Kind] += e.Size
		restItems[e.Kind]++
	}
	for kind, n := range restItems {
		a := get(kind)
		sampled := *a
		f := float64(n) / float64(max(sampled.Items, 1))
		if sampled.size > 0 && restSize[kind] > 0 {
			f = float64(restSize[kind]) / float64(sampled.size)
		}
		scale := func(v int64) int64 { return int64(math.Round(float64(v) * f)) }
		a.Items += n
		a.Pages += int(scale(int64(sampled.Pages)))
		a.Images += int(scale(int64(sampled.Images)))
		a.Requests += int(scale(int64(sampled.Requests)))
		a.InputTokens += scale(sampled.InputTokens)
		a.OutputTokens += scale(sampled.OutputTokens)
		a.ImageTokens += scale(sampled.ImageTokens)
		if kind == jobs.KindImage {
			a.Images = a.Items // one image per item, whatever the sizes
		}
	}
	var all Totals
	for kind, a := range sums {
		t := a.Totals
		p.price(prof, &t)
		p.Kinds[kind] = t
		all.Items += t.Items
		all.Pages += t.Pages
		all.Images += t.Images
		all.Requests += t.Requests
		all.InputTokens += t.InputTokens
		all.OutputTokens += t.OutputTokens
		all.ImageTokens += t.ImageTokens
	}
	p.price(prof, &all)
	p.All = all
	return p
}

func (p *Plan) price(prof llm.Profile, t *Totals) {
	t.Cost = prof.Prices.Cost(llm.Usage{InputTokens: int(t.InputTokens), OutputTokens: int(t.OutputTokens), ImageTokens: int(t.ImageTokens)})
	if prof.Prices.BatchDiscount > 0 {
		b := t.Cost * prof.Prices.BatchDiscount
		t.BatchCost = &b
	}
}

func readAll(ctx context.Context, st storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// imageSize reads an image's dimensions from its header, fetching more than
// the sniffed head when the header is further in (large EXIF blocks).
func imageSize(ctx context.Context, it ingest.Item) (int, int) {
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(it.Head)); err == nil {
		return cfg.Width, cfg.Height
	}
	rc, err := it.Store.Get(ctx, it.Ref.Key, &storage.Range{Length: imageHeaderMaxLen})
	if err != nil {
		return 0, 0
	}
	defer rc.Close()
	if cfg, _, err := image.DecodeConfig(rc); err == nil {
		return cfg.Width, cfg.Height
	}
	return 0, 0
}

// documentTokens estimates a document's text tokens (and pages for PDFs).
func documentTokens(ctx context.Context, it ingest.Item, passwords map[string]string) (int, int, error) {
	data, err := readAll(ctx, it.Store, it.Ref.Key, it.Ref.Size+1)
	if err != nil {
		return 0, 0, err
	}
	var text string
	switch it.Type {
	case "pdf":
		pw := ""
		for _, k := range []string{it.Ref.URL(), it.Ref.Key} {
			if p, ok := passwords[k]; ok {
				pw = p
			}
		}
		info, err := pdfsplit.Inspect(data, pw)
		if err != nil {
			return 0, 0, err
		}
		return info.Pages * TokensPerPDFPage, info.Pages, nil
	case "docx":
		text, err = extract.DOCX(data, extract.Limits{})
	case "html":
		text, err = extract.HTML(data)
	default:
		text, err = extract.Text(data)
	}
	if err != nil {
		return 0, 0, err
	}
	return chunk.EstimateTokens(text), 0, nil
}
