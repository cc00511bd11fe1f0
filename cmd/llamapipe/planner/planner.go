package planner

import (
	"bytes"
	"context"
	"image"
	_ "image/gif" // image headers for planning
	_ "image/jpeg"
	_ "image/png"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/chunk"
	"github.com/llamapipe/llamapipe/worker/extract"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/pdfsplit"
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
	// estimateWorkers is how many sampled items are read at once.
	estimateWorkers = 8
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
	// image headers decoded), drawn uniformly at random from the listing
	// (reservoir sampling; they are read once the listing is complete).
	// The rest are extrapolated: a document's text tokens and pages from
	// its size at its file type's tokens and pages per byte in the sample
	// (then chunked like the exact ones), an image at its type's average;
	// they count as processable (a broken file outside the sample is not
	// seen). A file type missing from the sample gets its first item
	// estimated too, so Plan.Sampled may exceed Sample by the number of
	// types. Zero means DefaultSample; negative: every item exactly, as
	// it is listed.
	Sample int
}

// Item is the estimate of one item.
type Item struct {
	Kind string
	// Type is the sniffed file type ("pdf", "jpeg", ...).
	Type     string
	Size     int64
	Pages    int
	Images   int
	Requests int
	Usage    llm.Usage
	// TextTokens is a document's estimated text, before prompts and
	// chunking.
	TextTokens int
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
	estimate := func(it ingest.Item) Item { return EstimateItem(ctx, it, budget, maxSide, opts.PDFPasswords) }
	var (
		mu    sync.Mutex
		exact []Item // estimated, or skipped
		// Otherwise, a uniform sample of the items to process (reservoir
		// sampling over the listing, estimated once it is complete), the
		// first item of each file type, and the items to extrapolate.
		reservoir []ingest.Item
		first     = map[string]ingest.Item{}
		rest      = map[string]Item{} // by item ID
		seen      int
		rng       = rand.New(rand.NewPCG(uint64(len(o.Sources)), 0x11a3a))
	)
	total, err := in.Scan(ctx, o, func(it ingest.Item) error {
		e := Item{Kind: it.Kind, Type: string(it.Type), Size: it.Ref.Size, Skip: it.Skip}
		if it.Unchanged {
			e.Skip = "unchanged since the last run (results kept)"
		}
		if e.Skip == "" && sample == math.MaxInt {
			e = estimate(it)
		}
		mu.Lock()
		defer mu.Unlock()
		if e.Skip != "" || sample == math.MaxInt {
			exact = append(exact, e)
			return nil
		}
		it.Head = slices.Clip(it.Head)
		if _, ok := first[e.Kind+"/"+e.Type]; !ok {
			first[e.Kind+"/"+e.Type] = it
		}
		seen++
		if len(reservoir) < sample {
			reservoir = append(reservoir, it)
			return nil
		}
		if j := rng.IntN(seen); j < sample {
			out := reservoir[j]
			rest[out.ID] = Item{Kind: out.Kind, Type: string(out.Type), Size: out.Ref.Size}
			reservoir[j] = it
			return nil
		}
		rest[it.ID] = e
		return nil
	})
	if err != nil {
		return Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return Plan{}, err
	}
	// Every file type gets at least one exact estimate to scale from.
	inSample := map[string]bool{}
	for _, it := range reservoir {
		inSample[it.Kind+"/"+string(it.Type)] = true
	}
	for typ, it := range first {
		if !inSample[typ] {
			delete(rest, it.ID)
			reservoir = append(reservoir, it)
		}
	}
	exact = append(exact, estimateAll(ctx, reservoir, estimate)...)
	if err := ctx.Err(); err != nil {
		return Plan{}, err
	}
	picked := len(reservoir)
	if sample == math.MaxInt {
		picked = 0
		for _, e := range exact {
			if e.Skip == "" || strings.HasPrefix(e.Skip, "would fail: ") {
				picked++
			}
		}
	}
	others := slices.Collect(maps.Values(rest))
	plan := summarize(prof, total, picked, extrapolate(exact, others, budget, maxSide))
	plan.Extrapolated = len(others) > 0
	return plan, nil
}

// estimateAll estimates items a few at a time.
func estimateAll(ctx context.Context, items []ingest.Item, estimate func(ingest.Item) Item) []Item {
	out := make([]Item, len(items))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(estimateWorkers, len(items)) {
		wg.Go(func() {
			for i := range next {
				out[i] = estimate(items[i])
			}
		})
	}
	for i := range items {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return out
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
	e := Item{Kind: it.Kind, Type: string(it.Type), Size: it.Ref.Size, Skip: it.Skip}
	if it.Unchanged {
		e.Skip = "unchanged since the last run (results kept)"
	}
	if e.Skip != "" {
		return e
	}
	switch it.Kind {
	case jobs.KindImage:
		w, h := imageSize(ctx, it)
		e.Images, e.Requests = 1, 1
		e.Usage = imageUsage(w, h, maxSide)
	case jobs.KindDocument:
		tokens, pages, err := documentTokens(ctx, it, passwords)
		if err != nil {
			e.Skip = "would fail: " + err.Error()
			return e
		}
		e.Pages, e.TextTokens = pages, tokens
		e.Requests, e.Usage = documentUsage(tokens, budget)
	}
	e.Usage.Estimated = true
	return e
}

// imageUsage is one caption request for an image of w×h pixels fitted to
// maxSide (0: as it is).
func imageUsage(w, h, maxSide int) llm.Usage {
	if m := max(w, h); m > maxSide && maxSide > 0 {
		w, h = w*maxSide/m, h*maxSide/m
	}
	img := llm.EstimateImageTokens(w, h)
	return llm.Usage{InputTokens: img + PromptTokens, ImageTokens: img, OutputTokens: CaptionOutput, Estimated: true}
}

// documentUsage is the requests a document of tokens text tokens needs:
// one summary when it fits budget, else a map per chunk and reduces.
func documentUsage(tokens, budget int) (int, llm.Usage) {
	if tokens <= budget {
		return 1, llm.Usage{InputTokens: tokens + PromptTokens, OutputTokens: SummaryOutput, Estimated: true}
	}
	chunks := (tokens + budget - 1) / budget
	reduces := 1 + chunks*MapOutput/budget
	return chunks + reduces, llm.Usage{
		InputTokens:  tokens + chunks*PromptTokens + chunks*MapOutput + reduces*PromptTokens,
		OutputTokens: chunks*MapOutput + reduces*SummaryOutput,
		Estimated:    true,
	}
}

// extrapolate estimates the items that were not sampled from the sampled
// ones of their file type (else kind): documents by size, at the sample's
// text tokens and pages per byte; images and others at the sample's
// average per item. It returns exact and rest together.
func extrapolate(exact, rest []Item, budget, maxSide int) []Item {
	if len(rest) == 0 {
		return exact
	}
	type stat struct {
		n                       int
		size                    int64
		tokens, pages, requests int
		usage                   llm.Usage
	}
	stats := map[string]*stat{}
	for _, e := range exact {
		if e.Skip != "" {
			continue
		}
		for _, k := range []string{e.Kind + "/" + e.Type, e.Kind} {
			st := stats[k]
			if st == nil {
				st = &stat{}
				stats[k] = st
			}
			st.n++
			st.size += e.Size
			st.tokens += e.TextTokens
			st.pages += e.Pages
			st.requests += e.Requests
			st.usage.InputTokens += e.Usage.InputTokens
			st.usage.OutputTokens += e.Usage.OutputTokens
			st.usage.ImageTokens += e.Usage.ImageTokens
		}
	}
	out := append([]Item(nil), exact...)
	for _, e := range rest {
		st := stats[e.Kind+"/"+e.Type]
		if st == nil {
			st = stats[e.Kind]
		}
		switch {
		case e.Kind == jobs.KindDocument && st != nil && st.size > 0:
			f := float64(e.Size) / float64(st.size)
			e.TextTokens = int(math.Round(float64(st.tokens) * f))
			e.Pages = int(math.Round(float64(st.pages) * f))
			e.Requests, e.Usage = documentUsage(e.TextTokens, budget)
		case e.Kind == jobs.KindDocument:
			// Nothing to go by: plain text at about 4 bytes a token.
			e.TextTokens = int(e.Size / 4)
			e.Requests, e.Usage = documentUsage(e.TextTokens, budget)
		case e.Kind == jobs.KindImage && st == nil:
			e.Images, e.Requests, e.Usage = 1, 1, imageUsage(maxSide, maxSide, maxSide)
		case st != nil:
			e.Requests = int(math.Round(float64(st.requests) / float64(st.n)))
			e.Usage = llm.Usage{InputTokens: st.usage.InputTokens / st.n, OutputTokens: st.usage.OutputTokens / st.n,
				ImageTokens: st.usage.ImageTokens / st.n, Estimated: true}
			if e.Kind == jobs.KindImage {
				e.Images = 1
			}
		}
		out = append(out, e)
	}
	return out
}

// summarize adds up the items' estimates; picked of them were sampled,
// the others extrapolated.
func summarize(prof llm.Profile, total, picked int, items []Item) Plan {
	p := Plan{Profile: prof.Preset, Provider: prof.Provider, Model: prof.Model, Currency: prof.Prices.Currency,
		Priced: prof.Prices.InputPerMillion > 0 || prof.Prices.OutputPerMillion > 0 || prof.Prices.ImagePerThousand > 0,
		Total:  total, Kinds: map[string]Totals{}, Sampled: picked}
	if p.Profile == "" {
		p.Profile = prof.Provider
	}
	var all Totals
	for _, e := range items {
		if e.Skip != "" {
			if p.Skips == nil {
				p.Skips = map[string]int{}
			}
			p.Skips[e.Skip]++
			p.Skipped++
			continue
		}
		k := p.Kinds[e.Kind]
		for _, t := range []*Totals{&k, &all} {
			t.Items++
			t.Pages += e.Pages
			t.Images += e.Images
			t.Requests += e.Requests
			t.InputTokens += int64(e.Usage.InputTokens)
			t.OutputTokens += int64(e.Usage.OutputTokens)
			t.ImageTokens += int64(e.Usage.ImageTokens)
		}
		p.Kinds[e.Kind] = k
	}
	for kind, t := range p.Kinds {
		p.price(prof, &t)
		p.Kinds[kind] = t
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
