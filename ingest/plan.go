package ingest

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage"
)

// DefaultPlanSample is how many items are estimated exactly when
// PlanOptions.Sample is zero.
const DefaultPlanSample = 500

// estimateWorkers is how many sampled items are read at once when
// PlanOptions.Pool is nil.
const estimateWorkers = 8

// Default time limits of an estimate (PlanOptions.ItemTimeout, Timeout).
const (
	DefaultEstimateItemTimeout = 10 * time.Second
	DefaultEstimateTimeout     = time.Minute
)

// An EstimatePool bounds how many items are estimated at once, over every
// Plan that shares it (the API server has one for all its requests), so
// that concurrent submits cannot multiply the objects read and parsed at a
// time. Estimates run in goroutines of their own, at most n at once; a Plan
// that stops waiting (its time limit) leaves them to finish in their slot.
type EstimatePool struct{ slots chan struct{} }

// NewEstimatePool returns a pool of n slots (n < 1 means 1).
func NewEstimatePool(n int) *EstimatePool {
	return &EstimatePool{slots: make(chan struct{}, max(n, 1))}
}

// start waits for a slot (or ctx) and runs f in a goroutine in it. It
// reports false when ctx ended first.
func (p *EstimatePool) start(ctx context.Context, f func()) bool {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	go func() {
		defer func() { <-p.slots }()
		f()
	}()
	return true
}

// ItemEstimator estimates the model requests, tokens and cost of items
// under one model profile. worker/estimate implements it; ingest only
// lists, samples and sums.
type ItemEstimator interface {
	// Estimate estimates item e (its Kind, Type and Size set), the object
	// ref in st whose first bytes are head, reading it as needed. An item
	// that cannot be read gets a Skip starting plan.WouldFail.
	Estimate(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte, e plan.Item) plan.Item
	// Extrapolate fills in the requests and tokens of e, which was not
	// read: a document from its TextTokens (scaled from the sample), an
	// image of unknown size at the largest size images are sent at.
	Extrapolate(e plan.Item) plan.Item
	// Price names the profile in p and prices its totals.
	Price(p *plan.Plan)
}

// PlanOptions tune Plan.
type PlanOptions struct {
	// Sample is how many items are estimated exactly (documents read,
	// image headers decoded), drawn uniformly at random from the listing
	// (reservoir sampling; they are read once the listing is complete).
	// The rest are extrapolated: a document's text tokens and pages from
	// its size at its file type's tokens and pages per byte in the sample
	// (then chunked like the exact ones), an image at its type's average;
	// they count as processable (a broken file outside the sample is not
	// seen). A file type missing from the sample gets its first item
	// estimated too, so Plan.Sampled may exceed Sample by the number of
	// types. Zero means DefaultPlanSample; negative: every item exactly,
	// as it is listed.
	Sample int
	// Pool runs the estimates. Nil: a pool of its own, 8 at once.
	Pool *EstimatePool
	// ItemTimeout bounds the estimate of one item; Timeout the estimates
	// of them all. An item not estimated in time is extrapolated by size
	// like one outside the sample. Zero means DefaultEstimateItemTimeout
	// and DefaultEstimateTimeout.
	ItemTimeout, Timeout time.Duration
}

// Plan lists what a batch with options o would hold (through Scan, which
// needs only in.Open) and estimates its requests, tokens and cost with est.
// It sends nothing and writes nothing.
func (in *Ingester) Plan(ctx context.Context, o Options, est ItemEstimator, opts PlanOptions) (plan.Plan, error) {
	sample := opts.Sample
	switch {
	case sample == 0:
		sample = DefaultPlanSample
	case sample < 0:
		sample = math.MaxInt
	}
	pool := cmp.Or(opts.Pool, NewEstimatePool(estimateWorkers))
	itemLimit := cmp.Or(opts.ItemTimeout, DefaultEstimateItemTimeout)
	ectx, cancel := context.WithTimeout(ctx, cmp.Or(opts.Timeout, DefaultEstimateTimeout))
	defer cancel()
	// estimate estimates one item in the pool (waiting for a slot up to
	// the whole estimate's limit) under the item's time limit; ok is false
	// when it was not estimated in time.
	estimate := func(it Item) (plan.Item, bool) {
		type result struct {
			e  plan.Item
			ok bool
		}
		done := make(chan result, 1)
		if !pool.start(ectx, func() {
			ictx, cancel := context.WithTimeout(ectx, itemLimit)
			defer cancel()
			e := est.Estimate(ictx, it.Store, it.Ref, it.Head, plan.Item{Kind: it.Kind, Type: it.Type, Size: it.Ref.Size})
			done <- result{e, ictx.Err() == nil}
		}) {
			return plan.Item{}, false
		}
		select {
		case r := <-done:
			return r.e, r.ok
		case <-ectx.Done():
			return plan.Item{}, false
		}
	}
	var (
		mu    sync.Mutex
		exact []plan.Item // estimated, or skipped
		// Otherwise, a uniform sample of the items to process (reservoir
		// sampling over the listing, estimated once it is complete), the
		// first item of each file type, and the items to extrapolate.
		reservoir []Item
		first     = map[string]Item{}
		rest      = map[string]plan.Item{} // by item ID
		seen      int
		rng       = rand.New(rand.NewPCG(uint64(len(o.Sources)), 0x11a3a))
	)
	total, err := in.Scan(ctx, o, func(it Item) error {
		e := plan.Item{Kind: it.Kind, Type: it.Type, Size: it.Ref.Size, Skip: it.Skip}
		if it.Unchanged {
			e.Skip = plan.Unchanged
		}
		if it.Failed {
			e.Skip = plan.WouldFail + it.Skip
		}
		if e.Skip == "" && sample == math.MaxInt {
			got, ok := estimate(it)
			mu.Lock()
			defer mu.Unlock()
			if !ok { // not in time: by size, with the others
				rest[it.ID] = e
				return nil
			}
			exact = append(exact, got)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if e.Skip != "" {
			exact = append(exact, e)
			return nil
		}
		it.Head = slices.Clip(it.Head)
		if _, ok := first[class(e.Kind, e.Type)]; !ok {
			first[class(e.Kind, e.Type)] = it
		}
		seen++
		if len(reservoir) < sample {
			reservoir = append(reservoir, it)
			return nil
		}
		if j := rng.IntN(seen); j < sample {
			out := reservoir[j]
			rest[out.ID] = plan.Item{Kind: out.Kind, Type: out.Type, Size: out.Ref.Size}
			reservoir[j] = it
			return nil
		}
		rest[it.ID] = e
		return nil
	})
	if err != nil {
		return plan.Plan{}, err
	}
	if err := ctx.Err(); err != nil {
		return plan.Plan{}, err
	}
	// Every file type gets at least one exact estimate to scale from.
	inSample := map[string]bool{}
	for _, it := range reservoir {
		inSample[class(it.Kind, it.Type)] = true
	}
	for typ, it := range first {
		if !inSample[typ] {
			delete(rest, it.ID)
			reservoir = append(reservoir, it)
		}
	}
	got, late := estimateAll(reservoir, estimate)
	exact = append(exact, got...)
	for _, it := range late {
		rest[it.ID] = plan.Item{Kind: it.Kind, Type: it.Type, Size: it.Ref.Size}
	}
	if err := ctx.Err(); err != nil {
		return plan.Plan{}, err
	}
	picked := len(reservoir) - len(late)
	if sample == math.MaxInt {
		picked = 0
		for _, e := range exact {
			if e.Skip == "" || strings.HasPrefix(e.Skip, plan.WouldFail) {
				picked++
			}
		}
	}
	others := make([]plan.Item, 0, len(rest))
	for _, e := range rest {
		others = append(others, e)
	}
	p := plan.Summarize(total, picked, extrapolate(exact, others, est))
	p.Extrapolated = len(others) > 0
	est.Price(&p)
	return p, nil
}

// estimateAll estimates items a few at a time (estimate runs each in the
// pool); it returns the estimates and the items not estimated in time.
func estimateAll(items []Item, estimate func(Item) (plan.Item, bool)) (exact []plan.Item, late []Item) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan Item)
	for range min(estimateWorkers, len(items)) {
		wg.Go(func() {
			for it := range next {
				e, ok := estimate(it)
				mu.Lock()
				if ok {
					exact = append(exact, e)
				} else {
					late = append(late, it)
				}
				mu.Unlock()
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return exact, late
}

// extrapolate estimates the items that were not sampled from the sampled
// ones of their file type (else kind): documents by size, at the sample's
// text tokens and pages per byte; images and others at the sample's
// average per item. It returns exact and rest together.
func extrapolate(exact, rest []plan.Item, est ItemEstimator) []plan.Item {
	if len(rest) == 0 {
		return exact
	}
	type stat struct {
		n                       int
		size                    int64
		tokens, pages, requests int
		in, out, img            int
	}
	stats := map[string]*stat{}
	for _, e := range exact {
		if e.Skip != "" {
			continue
		}
		for _, k := range []string{class(e.Kind, e.Type), string(e.Kind)} {
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
			st.in += e.InputTokens
			st.out += e.OutputTokens
			st.img += e.ImageTokens
		}
	}
	out := append([]plan.Item(nil), exact...)
	for _, e := range rest {
		st := stats[class(e.Kind, e.Type)]
		if st == nil {
			st = stats[string(e.Kind)]
		}
		switch {
		case e.Kind == jobs.KindDocument && st != nil && st.size > 0:
			f := float64(e.Size) / float64(st.size)
			e.TextTokens = int(math.Round(float64(st.tokens) * f))
			e.Pages = int(math.Round(float64(st.pages) * f))
			e = est.Extrapolate(e)
		case e.Kind == jobs.KindDocument:
			// Nothing to go by: plain text at about 4 bytes a token.
			e.TextTokens = int(e.Size / 4)
			e = est.Extrapolate(e)
		case e.Kind == jobs.KindImage && st == nil:
			e = est.Extrapolate(e)
		case st != nil:
			e.Requests = int(math.Round(float64(st.requests) / float64(st.n)))
			e.InputTokens, e.OutputTokens, e.ImageTokens = st.in/st.n, st.out/st.n, st.img/st.n
			if e.Kind == jobs.KindImage {
				e.Images = 1
			}
		}
		out = append(out, e)
	}
	return out
}

// class groups items for extrapolation: kind and type.
func class(k jobs.Kind, t jobs.FileType) string { return string(k) + "/" + string(t) }
