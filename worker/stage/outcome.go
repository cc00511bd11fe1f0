package stage

import "github.com/llamapipe/llamapipe/worker/llm"

// Outcome is what processing one item (or one of its tasks) produced.
type Outcome struct {
	Results      []string
	InputTokens  int
	OutputTokens int
	Cost         float64
	Currency     string
	Model        string
	// Provider is, for answers of a fallback chain, the preset or provider
	// that gave the last one (empty: the worker's model's).
	Provider string
	Pages    int
	Chunks   int
	// Skipped, when set, records the item as skipped with this reason.
	Skipped string
	// Continued: the item goes on in other tasks (a long document's map and
	// reduce tasks); this task records nothing, the reduce records the item.
	Continued bool
	// Kept names the model answers this item kept until its results are
	// written (see Keeper); the worker drops them once it records the item.
	Kept []string
	// KeptInWorkArea: one of them went to (or came from) the work area, so
	// a file may be there to delete (on the common path they are in Redis).
	KeptInWorkArea bool
	// Frame: only the first frame or page of the source was used (see
	// Meta.Frame).
	Frame string
}

// Add accumulates another answer's usage into o.
func (o *Outcome) Add(a Answer, prices llm.Prices) {
	o.InputTokens += a.Usage.InputTokens
	o.OutputTokens += a.Usage.OutputTokens
	if a.Prices != nil {
		prices = *a.Prices // a fallback provider answered: its prices
	}
	if a.Provider != "" {
		o.Provider = a.Provider
	}
	cost := prices.Cost(a.Usage)
	if a.Batch && prices.BatchDiscount > 0 {
		cost *= prices.BatchDiscount // answered through the batch API
	}
	o.Cost += cost
	o.Currency = prices.Currency
	if a.Model != "" {
		o.Model = a.Model
	}
}
