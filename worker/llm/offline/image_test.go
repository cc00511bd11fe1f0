package offline

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// corpusImages finds shared/corpus/images by walking up from the package
// directory to the repository's parent.
func corpusImages(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "corpus", "images")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("test corpus not found: expected shared/corpus/images next to the repository (e.g. /work/shared/corpus/images)")
		}
		dir = parent
	}
}

func redSquare(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(m, m.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	s := min(w, h) / 2
	r := image.Rect((w-s)/2, (h-s)/2, (w+s)/2, (h+s)/2)
	draw.Draw(m, r, image.NewUniform(color.NRGBA{230, 20, 20, 255}), image.Point{}, draw.Src)
	return m
}

// noise is deterministic gray noise, blurred with sigma when sigma > 0.
func noise(w, h int, sigma float64) image.Image {
	r := rand.New(rand.NewPCG(7, 11))
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	if sigma > 0 {
		return imaging.Blur(m, sigma)
	}
	return m
}

func pngBytes(t *testing.T, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t *testing.T, m image.Image) []byte {
	t.Helper()
	return jpegBytesB(t, m)
}

func jpegBytesB(t testing.TB, m image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func analyze(t *testing.T, data []byte) *imageStats {
	t.Helper()
	st, err := New(Options{}).analyzeImage(&llm.Image{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func colorNamesOf(st *imageStats) []string {
	var out []string
	for _, c := range st.Colors {
		out = append(out, c.Name)
	}
	return out
}

func TestRedSquareOnWhite(t *testing.T) {
	for name, data := range map[string][]byte{
		"png":  pngBytes(t, redSquare(800, 600)),
		"jpeg": jpegBytes(t, redSquare(800, 600)),
	} {
		st := analyze(t, data)
		// The white background is not a colour of the subject.
		if got := colorNamesOf(st); !slices.Equal(got, []string{"red"}) {
			t.Errorf("%s: colors = %v (%+v), want [red]", name, got, st.Colors)
		}
		if st.Background != "white" || !st.WhiteBackground || st.Transparent {
			t.Errorf("%s: background %q white=%v transparent=%v", name, st.Background, st.WhiteBackground, st.Transparent)
		}
		if st.Blurry || st.Flat {
			t.Errorf("%s: blurry=%v flat=%v sharpness=%.1f", name, st.Blurry, st.Flat, st.Sharpness)
		}
		if st.Width != 800 || st.Height != 600 || st.Orientation != "landscape" {
			t.Errorf("%s: %dx%d %s", name, st.Width, st.Height, st.Orientation)
		}
	}
}

func TestBlurredNoiseIsBlurry(t *testing.T) {
	for _, sigma := range []float64{0, 4} {
		for name, data := range map[string][]byte{
			"png":  pngBytes(t, noise(300, 300, sigma)),
			"jpeg": jpegBytes(t, noise(300, 300, sigma)),
		} {
			st := analyze(t, data)
			if want := sigma > 0; st.Blurry != want || st.Flat {
				t.Errorf("noise sigma %v (%s): blurry=%v flat=%v sharpness=%.1f, want blurry=%v", sigma, name, st.Blurry, st.Flat, st.Sharpness, want)
			}
			if st.Orientation != "square" {
				t.Errorf("300x300 orientation %q", st.Orientation)
			}
		}
	}
}

func TestBlurredPhotoIsBlurry(t *testing.T) {
	// Landscape_1 is 1800x1200; shrunk to 800 px to keep the test fast.
	m, err := imaging.Open(filepath.Join(corpusImages(t), "exif", "Landscape_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	m = imaging.Fit(m, 800, 800, imaging.Box)
	sharp := analyze(t, jpegBytes(t, m))
	blurred := analyze(t, jpegBytes(t, imaging.Blur(m, 3)))
	if sharp.Blurry || !blurred.Blurry || blurred.Sharpness >= sharp.Sharpness/10 {
		t.Errorf("sharp: %.1f blurry=%v; blurred: %.1f blurry=%v", sharp.Sharpness, sharp.Blurry, blurred.Sharpness, blurred.Blurry)
	}
}

func TestTransparentPNGAndOrientation(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 300, 500)) // fully transparent, portrait
	draw.Draw(m, image.Rect(100, 150, 200, 350), image.NewUniform(color.NRGBA{10, 20, 110, 255}), image.Point{}, draw.Src)
	st := analyze(t, pngBytes(t, m))
	if !st.Transparent || st.Background != "transparent" || !st.WhiteBackground || st.Orientation != "portrait" {
		t.Errorf("stats = %+v", st)
	}
	if !slices.Contains(colorNamesOf(st), "navy") {
		t.Errorf("colors = %v, want navy", st.Colors)
	}
	// A plain image is flat, not blurry.
	// Almost nothing but background: the background colour is reported.
	dot := image.NewGray(image.Rect(0, 0, 200, 200))
	for i := range dot.Pix {
		dot.Pix[i] = 255
	}
	dot.Pix[200*100+100] = 0
	if got := colorNamesOf(analyze(t, pngBytes(t, dot))); !slices.Equal(got, []string{"white"}) {
		t.Errorf("white image colors = %v, want [white]", got)
	}
	plain := image.NewGray(image.Rect(0, 0, 200, 100))
	for i := range plain.Pix {
		plain.Pix[i] = 200
	}
	if st := analyze(t, pngBytes(t, plain)); !st.Flat || st.Blurry || st.Background != "light gray" || st.WhiteBackground {
		t.Errorf("plain gray: %+v", st)
	}
}

func TestCaptionAnswer(t *testing.T) {
	tp := loadTemplate(t, prompts.Caption)
	c := New(Options{})
	green := image.NewNRGBA(image.Rect(0, 0, 640, 480))
	draw.Draw(green, green.Bounds(), image.NewUniform(color.NRGBA{30, 160, 50, 255}), image.Point{}, draw.Src)
	cases := map[string]struct {
		data          []byte
		altText       string
		blurry, notWh bool
	}{
		"red square":    {pngBytes(t, redSquare(400, 400)), "Square image, mostly red, on a white background", false, false},
		"blurred noise": {jpegBytes(t, noise(300, 200, 4)), "Landscape image, mostly gray, on a gray background", true, true},
		"green field":   {jpegBytes(t, green), "Landscape image, mostly green, on a green background", false, true},
	}
	for name, cse := range cases {
		req := request(t, tp, prompts.CaptionData{Language: "en", Product: &prompts.Product{Name: "Thing"}})
		req.Parts = append(req.Parts, llm.Part{Image: &llm.Image{MIME: "image/png", Data: cse.data}})
		resp := complete(t, c, req)
		if err := tp.Validate([]byte(resp.Text)); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, resp.Text)
		}
		var cp caption
		if err := json.Unmarshal([]byte(resp.Text), &cp); err != nil {
			t.Fatal(err)
		}
		if cp.AltText != cse.altText || cp.Quality.Blurry != cse.blurry || cp.Quality.BackgroundNotWhite != cse.notWh || cp.Category != "unknown" {
			t.Errorf("%s: %s", name, resp.Text)
		}
	}
}

func TestCorpusImages(t *testing.T) {
	dir := corpusImages(t)
	cases := []struct {
		file        string
		color       string // must be among the colours
		transparent bool
		white       bool
		orientation string
	}{
		{"png/product_cutout_rgba.png", "red", true, true, "landscape"},
		{"png/product_cutout_palette_trns.png", "red", true, true, "landscape"},
		{"formats/product_cutout_lossless_alpha.webp", "red", true, true, "landscape"},
		{"photos/Picture_0B_by_freespace.jpg", "red", false, false, "landscape"},
		{"exif/Landscape_1.jpg", "light blue", false, false, "landscape"},
		{"exif/Portrait_1.jpg", "gray", false, false, "portrait"},
	}
	for _, c := range cases {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		st := analyze(t, data)
		if !slices.Contains(colorNamesOf(st), c.color) || st.Transparent != c.transparent ||
			st.WhiteBackground != c.white || st.Orientation != c.orientation || st.Blurry {
			t.Errorf("%s: %+v", c.file, st)
		}
	}
	// The grayscale image has only neutral colours.
	data, err := os.ReadFile(filepath.Join(dir, "png", "seeding_gray8.png"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range colorNamesOf(analyze(t, data)) {
		if !slices.Contains([]string{"black", "dark gray", "gray", "light gray", "white"}, n) {
			t.Errorf("grayscale photo has colour %q", n)
		}
	}
}

func TestBrokenImages(t *testing.T) {
	dir := corpusImages(t)
	c := New(Options{})
	for _, f := range []string{"empty.jpg", "text_named.jpg", "truncated_mid_idat.png", "truncated_baseline_60pct.jpg"} {
		data, err := os.ReadFile(filepath.Join(dir, "broken", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.analyzeImage(&llm.Image{Data: data}); llm.KindOf(err) != llm.Permanent {
			t.Errorf("%s: err = %v, want permanent", f, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "broken", "png_header_100000x100000.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.analyzeImage(&llm.Image{Data: data}); llm.KindOf(err) != llm.TooLarge {
		t.Errorf("huge header: err = %v, want too large", err)
	}
}
