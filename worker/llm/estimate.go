package llm

import (
	"bytes"
	"image"
	_ "image/gif"  // DecodeConfig for images sent without Width/Height
	_ "image/jpeg" // ditto
	_ "image/png"  // ditto
	"unicode/utf8"
)

// Estimates used when a provider reports no usage, and by the shared rate
// limiter before a call. They are rough: text is one token per 4 characters;
// images follow Llama 4's tiling (336×336 tiles of 144 tokens each after
// pixel shuffle, at most 16 tiles, plus one global tile when tiled), which is
// public model-card knowledge, not a provider's billing rule.
const (
	charsPerToken   = 4
	tileSide        = 336
	tokensPerTile   = 144
	maxTiles        = 16
	imageOverhead   = 8 // image start/end and tile separator tokens
	messageOverhead = 8 // role headers per message
)

// EstimateTextTokens estimates the tokens of s: characters / 4, rounded up.
func EstimateTextTokens(s string) int {
	n := utf8.RuneCountInString(s)
	return (n + charsPerToken - 1) / charsPerToken
}

// EstimateImageTokens estimates the tokens of a w×h image. Unknown sizes
// (zero) count as one tile.
func EstimateImageTokens(w, h int) int {
	if w <= 0 || h <= 0 {
		return tokensPerTile + imageOverhead
	}
	tiles := ((w + tileSide - 1) / tileSide) * ((h + tileSide - 1) / tileSide)
	if tiles > maxTiles {
		tiles = maxTiles
	}
	if tiles > 1 {
		tiles++ // global thumbnail tile
	}
	return tiles*tokensPerTile + imageOverhead
}

func imageSize(img *Image) (int, int) {
	if img.Width > 0 && img.Height > 0 {
		return img.Width, img.Height
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(img.Data)); err == nil {
		return cfg.Width, cfg.Height
	}
	return 0, 0
}

// EstimateInput estimates a request's input tokens, and the part of them
// spent on images.
func EstimateInput(req Request) (total, images int) {
	total = EstimateTextTokens(req.System) + messageOverhead
	if req.System != "" {
		total += messageOverhead
	}
	for _, p := range req.Parts {
		if p.Image != nil {
			w, h := imageSize(p.Image)
			images += EstimateImageTokens(w, h)
			continue
		}
		total += EstimateTextTokens(p.Text)
	}
	return total + images, images
}

// EstimateUsage estimates the usage of a call that answered text.
func EstimateUsage(req Request, answer string) Usage {
	in, img := EstimateInput(req)
	return Usage{InputTokens: in, OutputTokens: EstimateTextTokens(answer), ImageTokens: img, Images: req.Images(), Estimated: true}
}

// CompleteUsage fills what a provider left out of its usage report: when it
// reported no tokens at all, the whole usage is estimated (Estimated set);
// otherwise only ImageTokens is filled in from the image estimate (capped at
// InputTokens), since no supported provider reports it separately.
func CompleteUsage(u Usage, req Request, answer string) Usage {
	if u.InputTokens == 0 && u.OutputTokens == 0 {
		return EstimateUsage(req, answer)
	}
	u.Images = req.Images()
	if u.ImageTokens == 0 && req.HasImages() {
		_, img := EstimateInput(req)
		u.ImageTokens = min(img, u.InputTokens)
	}
	return u
}
