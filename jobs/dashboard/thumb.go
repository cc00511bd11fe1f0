package dashboard

import (
	"bytes"
	"fmt"
	"image"
	_ "image/gif" // decoders of the formats a thumbnail is made from
	"image/jpeg"
	_ "image/png"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

// thumbSide is the longest side of a gallery thumbnail, in pixels: twice
// the card's width, for sharp thumbnails on high-density screens.
const thumbSide = 320

// thumbMaxPixels refuses to decode a larger picture for a thumbnail (its
// size is read from the header first): a 24 MP photo is 96 MB of pixels.
const thumbMaxPixels = 50_000_000

// thumbnail scales an image to fit thumbSide and encodes it as JPEG. It
// returns ok false for what it does not decode (AVIF and HEIC, which the
// browser may show as they are) or will not (over thumbMaxPixels); an
// image already small enough is returned unchanged.
func thumbnail(b []byte) (out []byte, ctype string, ok bool) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > thumbMaxPixels {
		return nil, "", false
	}
	src, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, "", false
	}
	w, h := cfg.Width, cfg.Height
	if w <= thumbSide && h <= thumbSide {
		return nil, "", false
	}
	if w >= h {
		w, h = thumbSide, max(1, h*thumbSide/w)
	} else {
		w, h = max(1, w*thumbSide/h), thumbSide
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.White, image.Point{}, draw.Src) // flatten alpha onto white
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		panic(fmt.Sprintf("jpeg encode to memory: %v", err)) // cannot fail writing to a buffer
	}
	return buf.Bytes(), "image/jpeg", true
}
