package imageprep

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

func heifFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "heif", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rgbAt(t *testing.T, m image.Image, x, y int) (r, g, b uint8) {
	t.Helper()
	r32, g32, b32, _ := m.At(x, y).RGBA()
	return uint8(r32 >> 8), uint8(g32 >> 8), uint8(b32 >> 8)
}

// The rotated photos: stored 128x96 with a red block top left and a blue
// one bottom right, and an irot of a quarter turn anticlockwise. Upright
// they are 96x128 with red bottom left and blue top right.
func TestPrepareHEIFRotated(t *testing.T) {
	for _, name := range []string{"photo_irot90.avif", "photo_irot90.heic"} {
		t.Run(name, func(t *testing.T) {
			res, err := Prepare(context.Background(), heifFile(t, name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Width != 96 || res.Height != 128 || res.SourceWidth != 128 || res.SourceHeight != 96 || res.Orientation != 8 {
				t.Fatalf("got %dx%d from %dx%d, orientation %d; want 96x128 from 128x96, orientation 8",
					res.Width, res.Height, res.SourceWidth, res.SourceHeight, res.Orientation)
			}
			m, err := jpeg.Decode(bytes.NewReader(res.JPEG))
			if err != nil {
				t.Fatal(err)
			}
			if r, g, b := rgbAt(t, m, 10, 120); r < 150 || g > 90 || b > 90 {
				t.Errorf("bottom left is %d,%d,%d, want red", r, g, b)
			}
			if r, g, b := rgbAt(t, m, 85, 10); b < 150 || r > 90 || g > 90 {
				t.Errorf("top right is %d,%d,%d, want blue", r, g, b)
			}
			if r, g, b := rgbAt(t, m, 10, 10); g < 120 {
				t.Errorf("top left is %d,%d,%d, want the green gradient: rotated the wrong way or twice", r, g, b)
			}
		})
	}
}

// A dark disc on a transparent background comes out on white.
func TestPrepareHEIFAlphaFlattened(t *testing.T) {
	for _, name := range []string{"cutout_alpha.avif", "cutout_alpha.heic"} {
		t.Run(name, func(t *testing.T) {
			res, err := Prepare(context.Background(), heifFile(t, name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.HadAlpha || res.Width != 112 || res.Height != 112 {
				t.Fatalf("%dx%d, had alpha %v; want 112x112 with alpha", res.Width, res.Height, res.HadAlpha)
			}
			m, err := jpeg.Decode(bytes.NewReader(res.JPEG))
			if err != nil {
				t.Fatal(err)
			}
			if r, g, b := rgbAt(t, m, 2, 2); r < 235 || g < 235 || b < 235 {
				t.Errorf("corner is %d,%d,%d, want white", r, g, b)
			}
			if r, g, b := rgbAt(t, m, 56, 56); r > 90 || g > 90 || b > 110 {
				t.Errorf("centre is %d,%d,%d, want the dark disc", r, g, b)
			}
		})
	}
}

// A header declaring 100000x100000 pixels in a file of a few hundred
// bytes is refused from the header: no decoder runs.
func TestPrepareHEIFHeaderBomb(t *testing.T) {
	for _, name := range []string{"bomb_100000x100000.avif", "bomb_100000x100000.heic"} {
		t.Run(name, func(t *testing.T) {
			_, err := Prepare(context.Background(), heifFile(t, name), Options{})
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "100000x100000") {
				t.Fatalf("err %v, want ErrTooLarge naming 100000x100000", err)
			}
		})
	}
}

func TestReadHEIFDamaged(t *testing.T) {
	good := heifFile(t, "photo_irot90.avif")
	if info, err := readHEIF(good); err != nil || info.Width != 128 || info.Height != 96 || info.Orientation != 8 {
		t.Fatalf("readHEIF = %+v, %v", info, err)
	}
	for n := 0; n < len(good); n += 7 { // every cut fails or reads, never panics
		_, _ = readHEIF(good[:n])
	}
	if _, err := Prepare(context.Background(), good[:200], Options{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated AVIF: %v, want ErrCorrupt", err)
	}
}

// gen2brain/heic v0.4.5 decodes HEIC narrower than 97 pixels with the
// wrong colours: such files are refused, not captioned wrong.
func TestPrepareHEICNarrowRefused(t *testing.T) {
	d := heifFile(t, "cutout_alpha.heic")
	for i := 0; ; {
		j := bytes.Index(d[i:], []byte("ispe"))
		if j < 0 {
			break
		}
		i += j + 4
		d[i+7] = 96 // width 112 → 96
	}
	if _, err := Prepare(context.Background(), d, Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "97") {
		t.Fatalf("err %v, want ErrUnsupported for a HEIC under 97 pixels wide", err)
	}
}

// irot and imir compose into the EXIF orientation orientImage applies.
func TestOrientMatrixExif(t *testing.T) {
	quarter := func(n int) orientMatrix {
		m := identity
		for range n {
			m = m.then(rotCCW)
		}
		return m
	}
	for _, c := range []struct {
		m    orientMatrix
		want int
	}{
		{identity, 1}, {quarter(1), 8}, {quarter(2), 3}, {quarter(3), 6},
		{flipH, 2}, {flipV, 4},
		{quarter(1).then(flipH), 7}, {quarter(1).then(flipV), 5},
		{quarter(3).then(flipH), 5}, {flipH.then(quarter(1)), 5},
	} {
		if got := c.m.exif(); got != c.want {
			t.Errorf("%v: exif %d, want %d", c.m, got, c.want)
		}
	}
}

func TestFirstFrameSaid(t *testing.T) {
	gif := readCorpus(t, "formats/seeding_animated.gif")
	if got := firstFrame(jobs.FileGIF, gif, heifInfo{}); !strings.HasPrefix(got, "first of ") || !strings.Contains(got, "animated GIF") {
		t.Errorf("animated GIF: %q", got)
	}
	if got := firstFrame(jobs.FileGIF, readCorpus(t, "formats/product_cutout_transparent.gif"), heifInfo{}); got != "" {
		t.Errorf("still GIF: %q", got)
	}
	tif := readCorpus(t, "formats/seeding_lzw.tiff")
	if got := firstFrame(jobs.FileTIFF, tif, heifInfo{}); got != "" {
		t.Errorf("one-page TIFF: %q", got)
	}
	// Three chained IFDs (no entries): a three-page TIFF to the counter.
	three := []byte{'I', 'I', 42, 0, 8, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := firstFrame(jobs.FileTIFF, three, heifInfo{}); got != "first of 3 pages (multi-page TIFF)" {
		t.Errorf("three-page TIFF: %q", got)
	}
	if got := firstFrame(jobs.FileAVIF, nil, heifInfo{Sequence: true}); got != "first frame (AVIF image sequence)" {
		t.Errorf("AVIF sequence: %q", got)
	}
}
