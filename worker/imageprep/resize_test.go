package imageprep

import (
	"bytes"
	"image"
	"image/draw"
	"image/jpeg"
	"math"
	"path/filepath"
	"testing"

	"github.com/disintegration/imaging"
)

// resizeOpaque gives the picture imaging.Resize gives with the same filter
// (up to fixed-point rounding), for RGBA and Gray sources, down and up.
func TestResizeOpaqueMatchesImaging(t *testing.T) {
	data := readCorpus(t, filepath.Join("photos", "ColorfulCups_by_Dmitri_Popov.jpg"))
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	src, err := decodeJPEG(data, cfg, cfg.Width/4, cfg.Height/4, DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	rgba, ok := src.(*image.RGBA)
	if !ok { // the pure-Go backend's YCbCr
		rgba = image.NewRGBA(src.Bounds())
		draw.Draw(rgba, rgba.Bounds(), src, src.Bounds().Min, draw.Src)
	}
	gray := image.NewGray(rgba.Bounds())
	for i := range gray.Pix {
		gray.Pix[i] = rgba.Pix[i*4+1]
	}
	b := rgba.Bounds()
	for _, c := range []struct {
		name string
		img  image.Image
		w, h int
	}{
		{"rgba down", rgba, b.Dx() * 3 / 5, b.Dy() * 3 / 5},
		{"rgba up", rgba, b.Dx() + 7, b.Dy() + 3},
		{"rgba odd", rgba.SubImage(image.Rect(3, 5, 203, 155)), 57, 41},
		{"gray down", gray, b.Dx() / 3, b.Dy() / 3},
	} {
		got, ok := resizeOpaque(c.img, c.w, c.h)
		if !ok {
			t.Fatalf("%s: not taken", c.name)
		}
		want := imaging.Resize(c.img, c.w, c.h, resizeFilter)
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: bounds %v, want %v", c.name, got.Bounds(), want.Bounds())
		}
		maxDiff, se := 0, 0.0
		for i := range want.Pix {
			d := int(got.Pix[i]) - int(want.Pix[i])
			maxDiff = max(maxDiff, d, -d)
			se += float64(d * d)
		}
		psnr := 10 * math.Log10(255*255/(se/float64(len(want.Pix))))
		if maxDiff > 2 || psnr < 50 {
			t.Errorf("%s: differs from imaging by up to %d levels, PSNR %.1f dB", c.name, maxDiff, psnr)
		}
	}
	if _, ok := resizeOpaque(image.NewNRGBA(image.Rect(0, 0, 8, 8)), 4, 4); ok {
		t.Error("resizeOpaque took an NRGBA picture (it may have transparency)")
	}
}
