package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// ModelName is the Model of every Response and of the Profile.
const ModelName = "offline"

// Options tune the offline client. The zero value is ready to use.
type Options struct {
	// SummarySentences is how many sentences a summary (plain text or
	// executive_summary) keeps. Default 5.
	SummarySentences int
	// FactsPerChunk is how many facts a chunk_facts answer lists. Default 8.
	FactsPerChunk int
	// BlurThreshold: an image whose sharpness score (see doc.go) is below it
	// is flagged blurry. Default DefaultBlurThreshold.
	BlurThreshold float64
	// MaxImagePixels: larger images are refused with a TooLarge error
	// before decoding. Default 50,000,000.
	MaxImagePixels int
	// ContextTokens is the context window the Profile reports. Default 131072.
	ContextTokens int
}

// DefaultBlurThreshold is the default Options.BlurThreshold.
const DefaultBlurThreshold = 60

// Client is the offline llm.Client. It holds no mutable state and is safe
// for concurrent use.
type Client struct {
	opts Options
}

var _ llm.Client = (*Client)(nil)

// New returns an offline client; zero fields of opts take their defaults.
func New(opts Options) *Client {
	if opts.SummarySentences <= 0 {
		opts.SummarySentences = 5
	}
	if opts.FactsPerChunk <= 0 {
		opts.FactsPerChunk = 8
	}
	if opts.BlurThreshold <= 0 {
		opts.BlurThreshold = DefaultBlurThreshold
	}
	if opts.MaxImagePixels <= 0 {
		opts.MaxImagePixels = 50_000_000
	}
	if opts.ContextTokens <= 0 {
		opts.ContextTokens = 131072
	}
	return &Client{opts: opts}
}

// Profile describes the offline model: large limits, zero prices.
func (c *Client) Profile() llm.Profile {
	return llm.Profile{
		Provider:        "offline",
		Model:           ModelName,
		ContextTokens:   c.opts.ContextTokens,
		MaxOutputTokens: 16384,
		MaxImages:       16,
		MaxImageBytes:   20 << 20,
		MaxImagePixels:  c.opts.MaxImagePixels,
		ImageFormats:    []string{"image/jpeg", "image/png", "image/gif", "image/webp"},
		TextOnly:        true,
		JSONSchema:      true,
		JSONObject:      true,
		Prices:          llm.Prices{Currency: "USD"},
	}
}

func permanent(format string, args ...any) error {
	return &llm.Error{Kind: llm.Permanent, Provider: "offline", Message: fmt.Sprintf(format, args...)}
}

// Complete answers req from its own content; see the package documentation.
func (c *Client) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return llm.Response{}, fmt.Errorf("offline: %w", err)
	}
	var docs []string
	var images []*llm.Image
	for _, p := range req.Parts {
		switch {
		case p.Image != nil:
			images = append(images, p.Image)
		case p.Document:
			docs = append(docs, p.Text)
		}
	}
	usage := c.estimateInput(req)

	var text string
	var err error
	schema := ""
	if req.Schema != nil {
		schema = req.Schema.Name
	}
	switch schema {
	case prompts.SchemaCaption:
		if len(images) == 0 {
			return llm.Response{}, permanent("schema %q needs an image part", schema)
		}
		var st *imageStats
		st, err = c.analyzeImage(images[0])
		if err == nil {
			text, err = marshal(captionFromStats(st))
		}
	case prompts.SchemaContractDigest:
		var d *digest
		d, err = c.contractDigest(ctx, docs)
		if err == nil {
			text, err = marshal(d)
		}
	case prompts.SchemaCorrespondenceDigest:
		var d *correspondence
		d, err = c.correspondenceDigest(ctx, docs)
		if err == nil {
			text, err = marshal(d)
		}
	case prompts.SchemaChunkFacts:
		var f *chunkFacts
		f, err = c.chunkFacts(ctx, docs)
		if err == nil {
			text, err = marshal(f)
		}
	case "":
		text, err = c.plainText(ctx, docs, images)
	default:
		return llm.Response{}, permanent("schema %q is not supported offline (supported: caption, contract_digest, correspondence_digest, chunk_facts)", schema)
	}
	if err != nil {
		return llm.Response{}, err
	}

	finish := "stop"
	if schema == "" {
		limit := req.MaxOutputTokens
		if limit <= 0 {
			limit = c.Profile().MaxOutputTokens
		}
		if maxRunes := limit * 4; utf8.RuneCountInString(text) > maxRunes {
			text = truncateRunes(text, maxRunes)
			finish = "length"
		}
	}
	usage.OutputTokens = tokensForText(text)
	return llm.Response{Text: text, FinishReason: finish, Model: ModelName, Usage: usage}, nil
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("offline: encode answer: %w", err)
	}
	return string(b), nil
}

// plainText is the answer without a schema: image descriptions, then the
// summary of the document parts.
func (c *Client) plainText(ctx context.Context, docs []string, images []*llm.Image) (string, error) {
	var paras []string
	for i, img := range images {
		st, err := c.analyzeImage(img)
		if err != nil {
			return "", fmt.Errorf("image %d: %w", i+1, err)
		}
		paras = append(paras, describe(st))
	}
	if len(docs) > 0 {
		sents := documentSentences(docs)
		top, err := summarize(ctx, sents, c.opts.SummarySentences)
		if err != nil {
			return "", err
		}
		paras = append(paras, joinSentences(top))
	}
	return strings.Join(paras, "\n\n"), nil
}

// tokensForText estimates tokens as characters/4, rounded up.
func tokensForText(s string) int {
	return (utf8.RuneCountInString(s) + 3) / 4
}

// tileTokens is what one 336x336 image tile costs (Llama 4: 576 patches
// of 14 px, pixel-shuffled 4:1), and maxTiles the most tiles counted.
const (
	tileSize   = 336
	tileTokens = 144
	maxTiles   = 16
)

// tokensForImage estimates an image's tokens from its tiles, plus a global
// thumbnail tile when there is more than one.
func tokensForImage(w, h int) int {
	if w <= 0 || h <= 0 {
		return tileTokens
	}
	tiles := ((w + tileSize - 1) / tileSize) * ((h + tileSize - 1) / tileSize)
	if tiles > maxTiles {
		tiles = maxTiles
	}
	if tiles > 1 {
		tiles++
	}
	return tiles * tileTokens
}

func (c *Client) estimateInput(req llm.Request) llm.Usage {
	u := llm.Usage{Estimated: true}
	chars := utf8.RuneCountInString(req.System)
	if req.Schema != nil {
		chars += utf8.RuneCount(req.Schema.JSON)
	}
	for _, p := range req.Parts {
		if p.Image != nil {
			w, h := p.Image.Width, p.Image.Height
			if w <= 0 || h <= 0 {
				w, h = imageSize(p.Image.Data)
			}
			u.ImageTokens += tokensForImage(w, h)
			continue
		}
		chars += utf8.RuneCountInString(p.Text)
	}
	u.InputTokens = (chars+3)/4 + u.ImageTokens
	return u
}

// truncateRunes cuts s to at most n runes, at a word boundary when one is
// near, ending with "…".
func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	cut := len(r)
	for i := len(r) - 1; i > len(r)*3/4; i-- {
		if r[i] == ' ' {
			cut = i
			break
		}
	}
	return strings.TrimRight(string(r[:cut]), " ,;:") + "…"
}
