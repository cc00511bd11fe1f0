package estimate

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image"
	_ "image/gif" // image headers for planning
	_ "image/jpeg"
	_ "image/png"
	"io"
	"path"
	"unicode/utf8"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/mailparts"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage"
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
)

// DefaultReadLimit is how much of a document an estimate reads when
// Options.ReadLimit is zero: a larger text or HTML document's tokens are
// scaled from its first DefaultReadLimit bytes by size; a larger PDF or
// DOCX is not parsed at all but estimated from its size (BytesPerPDFPage,
// BytesPerDOCXToken). Either way the estimate is flagged Partial.
const DefaultReadLimit = 4 << 20

// Size-only estimates, for documents too large to read whole.
const (
	// BytesPerPDFPage is a typical PDF page's size (text with some
	// vector graphics or a small scan).
	BytesPerPDFPage = 50_000
	// BytesPerDOCXToken is a typical DOCX's size per token of text (the
	// XML is zipped; pictures make it larger).
	BytesPerDOCXToken = 8
)

// DefaultImageMaxSide is the long side images are fitted to when
// Options.ImageMaxSide is zero (the workers' default).
const DefaultImageMaxSide = 1344

// PromptReserve is the room left in the context window for the prompt's
// own instructions and framing.
const PromptReserve = 2048

// TextBudget is how many tokens of document text one request to a model
// with this profile may carry, leaving room for the prompt and for an answer
// of maxOut tokens (zero: the profile's cap, at most 4096). The worker
// chunks documents by it.
func TextBudget(prof llm.Profile, maxOut int) int {
	ctxTokens := prof.ContextTokens
	if ctxTokens <= 0 {
		ctxTokens = 8192
	}
	if maxOut == 0 {
		maxOut = min(prof.MaxOutputTokens, 4096)
	}
	return max(ctxTokens-maxOut-PromptReserve, 512)
}

// Password finds a PDF's password in passwords by the object's full URL,
// its key, or its file name (in that order); "" when none is given. The
// worker opens PDFs with it.
func Password(passwords map[string]string, ref jobs.Ref) string {
	for _, k := range []string{ref.URL(), ref.Key, path.Base(ref.Key)} {
		if pw, ok := passwords[k]; ok {
			return pw
		}
	}
	return ""
}

// Options tune an Estimator.
type Options struct {
	// MaxOutputTokens is the batch's answer cap (it sizes document chunks).
	// Zero: the profile's.
	MaxOutputTokens int
	// ImageMaxSide is the long side, in pixels, images are sent at. Zero
	// means DefaultImageMaxSide; negative: images are sent as they are.
	ImageMaxSide int
	// PDFPasswords maps a source URL, key or file name to its PDF password
	// (see Password).
	PDFPasswords map[string]string
	// ReadLimit is how many bytes of a document are read at most (see
	// DefaultReadLimit). Zero means DefaultReadLimit.
	ReadLimit int64
}

// Estimator estimates items under one model profile. It implements
// ingest.ItemEstimator.
type Estimator struct {
	prof      llm.Profile
	budget    int
	maxSide   int
	passwords map[string]string
	readLimit int64
}

// New returns an Estimator for prof.
func New(prof llm.Profile, opts Options) *Estimator {
	maxSide := opts.ImageMaxSide
	switch {
	case maxSide == 0:
		maxSide = DefaultImageMaxSide
	case maxSide < 0:
		maxSide = 0
	}
	return &Estimator{prof: prof, budget: TextBudget(prof, opts.MaxOutputTokens), maxSide: maxSide, passwords: opts.PDFPasswords,
		readLimit: cmp.Or(opts.ReadLimit, DefaultReadLimit)}
}

// Estimate estimates item e (its Kind, Type and Size set), the object ref
// in st whose first bytes are head: documents are read (PDF pages ×
// TokensPerPDFPage, else the extracted text's tokens, mapped and reduced in
// chunks of the text budget), images are fitted to the image size and
// counted in Llama 4 tiles. At most the read limit (DefaultReadLimit) of a
// document is read: a larger one is estimated from that prefix or its size
// (e.Partial). An item that cannot be read gets a Skip reason starting
// plan.WouldFail. Reads stop when ctx ends; a PDF within the read
// limit is parsed to the end.
func (x *Estimator) Estimate(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte, e plan.Item) plan.Item {
	switch e.Kind {
	case jobs.KindImage:
		w, h := imageSize(ctx, st, ref, head)
		e.Images, e.Requests = 1, 1
		setUsage(&e, imageUsage(w, h, x.maxSide))
	case jobs.KindDocument:
		tokens, pages, partial, err := documentTokens(ctx, st, ref, e.Type, x.passwords, x.readLimit)
		if err != nil {
			e.Skip = plan.WouldFail + err.Error()
			return e
		}
		e.Pages, e.TextTokens, e.Partial = pages, tokens, partial
		var u llm.Usage
		e.Requests, u = documentUsage(tokens, x.budget)
		setUsage(&e, u)
	}
	return e
}

// Extrapolate fills in the requests and tokens of e, which was not read: a
// document from its TextTokens, an image (of unknown size) at the largest
// size images are sent at.
func (x *Estimator) Extrapolate(e plan.Item) plan.Item {
	var u llm.Usage
	switch e.Kind {
	case jobs.KindDocument:
		e.Requests, u = documentUsage(e.TextTokens, x.budget)
	case jobs.KindImage:
		e.Images, e.Requests, u = 1, 1, imageUsage(x.maxSide, x.maxSide, x.maxSide)
	default:
		return e
	}
	setUsage(&e, u)
	return e
}

// Price names the profile in p (its preset, else its provider) and prices
// p's totals under its prices, with the batch API's price when the profile
// has a batch discount. It notes (p.Notes) a profile without prices, and
// images that make up most of the cost.
func (x *Estimator) Price(p *plan.Plan) {
	prof := x.prof
	p.Profile, p.Provider, p.Model, p.Currency = prof.Preset, prof.Provider, prof.Model, prof.Prices.Currency
	if p.Profile == "" {
		p.Profile = prof.Provider
	}
	p.Priced = prof.Prices.Priced()
	for kind, t := range p.Kinds {
		x.price(&t)
		p.Kinds[kind] = t
	}
	x.price(&p.All)
	switch {
	case !p.Priced:
		note := fmt.Sprintf("profile %s has no prices: costs are 0 and money budgets cannot be checked", p.Profile)
		if prof.Prices.Note != "" {
			note = fmt.Sprintf("profile %s has no prices: %s", p.Profile, prof.Prices.Note)
		}
		p.Notes = append(p.Notes, note)
	case p.All.Cost > 0 && p.All.ImageCost > ImagesDominate*p.All.Cost:
		unit := "1K image tokens"
		if prof.Prices.ImageUnit == llm.ImageUnitImages {
			unit = "1K images"
		}
		p.Notes = append(p.Notes, fmt.Sprintf("images are %.0f%% of the estimated cost (%.4f of %.4f %s at %g %s per %s): check the profile's image price and its unit (image_unit)",
			100*p.All.ImageCost/p.All.Cost, p.All.ImageCost, p.All.Cost, p.Currency, prof.Prices.ImagePerThousand, p.Currency, unit))
	}
}

// ImagesDominate is the share of a plan's cost above which images' own
// price is called out in the plan's notes.
const ImagesDominate = 0.5

func (x *Estimator) price(t *plan.Totals) {
	prices := x.prof.Prices
	u := llm.Usage{InputTokens: int(t.InputTokens), OutputTokens: int(t.OutputTokens), ImageTokens: int(t.ImageTokens), Images: t.Images}
	t.Cost, t.ImageCost = prices.Cost(u), prices.ImageCost(u)
	t.BatchCost = nil
	if prices.BatchDiscount > 0 {
		b := t.Cost * prices.BatchDiscount
		t.BatchCost = &b
	}
}

// setUsage copies a request's token counts into an item's estimate.
func setUsage(e *plan.Item, u llm.Usage) {
	e.InputTokens, e.OutputTokens, e.ImageTokens = u.InputTokens, u.OutputTokens, u.ImageTokens
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

// readPrefix reads the first limit bytes of key.
func readPrefix(ctx context.Context, st storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key, &storage.Range{Length: limit})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// imageSize reads an image's dimensions from its header (head), fetching
// more of ref when the header is further in (large EXIF blocks).
func imageSize(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte) (int, int) {
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(head)); err == nil {
		return cfg.Width, cfg.Height
	}
	rc, err := st.Get(ctx, ref.Key, &storage.Range{Length: imageHeaderMaxLen})
	if err != nil {
		return 0, 0
	}
	defer rc.Close()
	if cfg, _, err := image.DecodeConfig(rc); err == nil {
		return cfg.Width, cfg.Height
	}
	return 0, 0
}

// documentTokens estimates a document's text tokens (and pages for PDFs),
// a PDF opened with the password the worker would use. It reads at most
// limit bytes: a larger PDF or DOCX is estimated from its size, a larger
// text or HTML document from its first limit bytes scaled by size (partial).
func documentTokens(ctx context.Context, st storage.Store, ref jobs.Ref, typ jobs.FileType, passwords map[string]string, limit int64) (tokens, pages int, partial bool, err error) {
	if ref.Size > limit {
		switch typ {
		case jobs.FilePDF:
			pages := int(max(1, (ref.Size+BytesPerPDFPage-1)/BytesPerPDFPage))
			return pages * TokensPerPDFPage, pages, true, nil
		case jobs.FileDOCX:
			return int(max(1, ref.Size/BytesPerDOCXToken)), 0, true, nil
		}
	}
	data, err := readPrefix(ctx, st, ref.Key, limit)
	if err != nil {
		return 0, 0, false, err
	}
	if ref.Part != "" { // an email attachment, read from its message
		if data, err = mailparts.Open(data, ref.Part, mailparts.Limits{}); err != nil {
			return 0, 0, false, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	partial = int64(len(data)) >= limit && ref.Size != int64(len(data))
	if partial {
		data = wholeLines(data)
	}
	var text string
	switch {
	case typ == jobs.FilePDF && !partial:
		info, err := pdfsplit.Inspect(data, Password(passwords, ref))
		if err != nil {
			return 0, 0, false, err
		}
		return info.Pages * TokensPerPDFPage, info.Pages, false, nil
	case typ == jobs.FilePDF, typ == jobs.FileDOCX && partial:
		// Grew past the limit since it was listed: by size.
		return documentTokens(ctx, st, jobs.Ref{Key: ref.Key, Size: max(ref.Size, limit+1)}, typ, passwords, limit)
	default: // the document stage's own switch (extract.Document)
		text, err = extract.Document(typ, data, extract.Limits{})
	}
	if err != nil {
		return 0, 0, false, err
	}
	tokens = chunk.EstimateTokens(text)
	if partial && len(data) > 0 && ref.Size > int64(len(data)) {
		tokens = int(float64(tokens) * float64(ref.Size) / float64(len(data)))
	}
	return tokens, 0, partial, nil
}

// wholeLines cuts a document's prefix after its last line break (in the
// last 64 KiB), else after its last whole UTF-8 character, so a character
// cut in two does not change how the text is decoded. A UTF-16 prefix (its
// byte order mark) is cut to an even length.
func wholeLines(data []byte) []byte {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return data[:len(data)&^1]
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 && len(data)-i < 64<<10 {
		return data[:i+1]
	}
	for n := 0; n < utf8.UTFMax && len(data) > 0; n++ {
		if r, _ := utf8.DecodeLastRune(data); r != utf8.RuneError {
			break
		}
		data = data[:len(data)-1]
	}
	return data
}
