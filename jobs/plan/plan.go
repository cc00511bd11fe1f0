package plan

import "github.com/llamapipe/llamapipe/jobs"

// Item is the estimate of one item of a batch before it runs: what
// `llamapipe plan` counts and the API's submit answer sums up.
type Item struct {
	// Kind is the item's kind (jobs.KindDocument, jobs.KindImage); Type its sniffed
	// file type ("pdf", "jpeg", ...).
	Kind jobs.Kind
	Type jobs.FileType
	Size int64
	// Pages are a PDF's pages; Images is 1 for an image.
	Pages    int
	Images   int
	Requests int
	// InputTokens, OutputTokens and ImageTokens (the part of InputTokens
	// that are image tiles) are the model tokens the item would use.
	InputTokens  int
	OutputTokens int
	ImageTokens  int
	// TextTokens is a document's estimated text, before prompts and
	// chunking.
	TextTokens int
	// Skip is why the item would not be processed ("" if it would). An
	// item that could not be read starts with WouldFail.
	Skip string
	// Partial is true when the item was too large to read whole for the
	// estimate: its tokens were scaled from its first bytes, or (a PDF or
	// DOCX) guessed from its size.
	Partial bool
}

// Skip reasons of a plan that are not the listing's.
const (
	// Unchanged is the Skip of an item whose results are kept.
	Unchanged = "unchanged since the last run (results kept)"
	// WouldFail starts the Skip of an item the workers could not read.
	WouldFail = "would fail: "
)

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
	// ImageCost is the part of Cost that is the images' own price (for
	// profiles that price images apart from tokens).
	ImageCost float64 `json:"image_cost,omitempty"`
	// BatchCost is the price through the provider's batch API, when the
	// profile has a batch discount.
	BatchCost *float64 `json:"batch_cost,omitempty"`
}

// Add adds one item's estimate to t.
func (t *Totals) Add(e Item) {
	t.Items++
	t.Pages += e.Pages
	t.Images += e.Images
	t.Requests += e.Requests
	t.InputTokens += int64(e.InputTokens)
	t.OutputTokens += int64(e.OutputTokens)
	t.ImageTokens += int64(e.ImageTokens)
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
	Kinds map[jobs.Kind]Totals `json:"kinds"`
	All   Totals               `json:"all"`
	// Sampled is how many items were estimated exactly; Extrapolated is
	// true when the others' numbers were scaled from them by size.
	Sampled      int  `json:"sampled"`
	Extrapolated bool `json:"extrapolated"`
	// Partial is how many of the Sampled items were too large to read
	// whole: estimated from their first bytes or their size.
	Partial int `json:"partial,omitempty"`
	// Notes are warnings about the estimate for whoever reads the plan: a
	// profile without prices, images that dominate the cost.
	Notes []string `json:"notes,omitempty"`
}
