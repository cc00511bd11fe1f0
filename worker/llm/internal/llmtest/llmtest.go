package llmtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/worker/llm"
)

func pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), uint8(x + y), 255})
		}
	}
	return img
}

// JPEG encodes a w×h test pattern as JPEG.
func JPEG(t testing.TB, w, h int) *llm.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pattern(w, h), &jpeg.Options{Quality: 80}); err != nil {
		t.Fatalf("encode jpeg: %v", err)
	}
	return &llm.Image{MIME: "image/jpeg", Data: buf.Bytes(), Width: w, Height: h}
}

// PNG encodes a w×h test pattern as PNG.
func PNG(t testing.TB, w, h int) *llm.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, pattern(w, h)); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return &llm.Image{MIME: "image/png", Data: buf.Bytes(), Width: w, Height: h}
}

// CheckImage decodes data and checks its format ("jpeg", "png") and size.
func CheckImage(t testing.TB, data []byte, format string, w, h int) {
	t.Helper()
	cfg, got, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("image does not decode: %v", err)
	}
	if got != format || cfg.Width != w || cfg.Height != h {
		t.Fatalf("image is %s %dx%d, want %s %dx%d", got, cfg.Width, cfg.Height, format, w, h)
	}
}

// CheckDataURL checks that url is data:<mime>;base64,… whose payload decodes
// to an image of that type and size.
func CheckDataURL(t testing.TB, url, mime string, w, h int) {
	t.Helper()
	prefix := "data:" + mime + ";base64,"
	if !strings.HasPrefix(url, prefix) {
		head := url
		if len(head) > 40 {
			head = head[:40]
		}
		t.Fatalf("data URL starts %q, want prefix %q", head, prefix)
	}
	data, err := base64.StdEncoding.DecodeString(url[len(prefix):])
	if err != nil {
		t.Fatalf("data URL payload is not base64: %v", err)
	}
	CheckImage(t, data, strings.TrimPrefix(mime, "image/"), w, h)
}

// Kind asserts err carries an *llm.Error of kind want and returns it.
func Kind(t testing.TB, err error, want llm.ErrorKind) *llm.Error {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) carries no *llm.Error", err, err)
	}
	if e.Kind != want {
		t.Fatalf("error %q has kind %v, want %v", e.Error(), e.Kind, want)
	}
	return e
}
