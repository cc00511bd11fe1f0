package imageprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/sniff"
)

// expectation for one corpus file: the sentinel it must fail with, or nil
// for a Result; msg must appear in the error text.
type expectation struct {
	err error
	msg string
}

// specialCases lists every corpus file that must fail, plus the broken/
// files that must decode. Files not listed in photos/, exif/, png/ and
// formats/ must produce a Result.
var specialCases = map[string]expectation{
	"formats/seeding_animated.webp":            {ErrUnsupported, "animated WebP"},
	"formats/seeding_jpeg_compressed.tiff":     {ErrUnsupported, "tiff"},
	"broken/empty.jpg":                         {ErrCorrupt, "empty input"},
	"broken/text_named.jpg":                    {ErrUnsupported, "unrecognised image format"},
	"broken/jpeg_header_65500x65500.jpg":       {ErrTooLarge, "65500x65500"},
	"broken/png_header_100000x100000.png":      {ErrTooLarge, "100000x100000"},
	"broken/png_bad_idat_crc.png":              {ErrCorrupt, "png"},
	"broken/truncated_mid_idat.png":            {ErrCorrupt, "png"},
	"broken/truncated_baseline_60pct.jpg":      {ErrCorrupt, "truncated"},
	"broken/truncated_progressive_50pct.jpg":   {ErrCorrupt, "JPEG"},
	"broken/jpeg_missing_eoi.jpg":              {nil, ""},
	"broken/exif_bad_ifd_offset_decodable.jpg": {nil, ""},
	"broken/truncated_animated_30pct.gif":      {nil, ""},
}

// formatFromName is the format a decodable corpus file is stored in (by its
// extension, except the one whose name lies).
func formatFromName(rel string) jobs.FileType {
	if rel == "formats/seeding_really_jpeg.png" {
		return jobs.FileJPEG
	}
	switch strings.ToLower(filepath.Ext(rel)) {
	case ".jpg", ".jpeg":
		return jobs.FileJPEG
	case ".png":
		return jobs.FilePNG
	case ".gif":
		return jobs.FileGIF
	case ".webp":
		return jobs.FileWebP
	case ".bmp":
		return jobs.FileBMP
	case ".tif", ".tiff":
		return jobs.FileTIFF
	case ".avif":
		return jobs.FileAVIF
	case ".heic", ".heif":
		return jobs.FileHEIC
	}
	return ""
}

func corpusFiles(t *testing.T) []string {
	t.Helper()
	root := corpusDir(t)
	var files []string
	for _, sub := range []string{"photos", "exif", "png", "formats", "broken"} {
		ents, err := os.ReadDir(filepath.Join(root, sub))
		if err != nil {
			t.Fatalf("corpus folder %s: %v", sub, err)
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasSuffix(e.Name(), ".py") || strings.HasSuffix(e.Name(), ".md") {
				continue
			}
			files = append(files, sub+"/"+e.Name())
		}
	}
	if len(files) < 70 {
		t.Fatalf("corpus at %s has only %d images; expected the 78 listed in SOURCES.md", root, len(files))
	}
	return files
}

func TestPrepareCorpus(t *testing.T) {
	files := corpusFiles(t)
	seen := map[string]bool{}
	for _, rel := range files {
		seen[rel] = true
		t.Run(rel, func(t *testing.T) {
			data := readCorpus(t, rel)
			want, special := specialCases[rel]
			if !special && strings.HasPrefix(rel, "broken/") {
				t.Fatalf("no expectation for %s: add it to specialCases", rel)
			}
			res, err := Prepare(context.Background(), data, testOpts)
			if want.err != nil {
				if err == nil {
					t.Fatalf("got a %dx%d result, want error %v", res.Width, res.Height, want.err)
				}
				if !errors.Is(err, want.err) {
					t.Fatalf("error %q does not wrap %v", err, want.err)
				}
				if !strings.Contains(err.Error(), want.msg) {
					t.Fatalf("error %q does not mention %q", err, want.msg)
				}
				for _, other := range []error{ErrUnsupported, ErrTooLarge, ErrCorrupt} {
					if other != want.err && errors.Is(err, other) {
						t.Fatalf("error %q wraps both %v and %v", err, want.err, other)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			checkResult(t, res, data, testOpts.withDefaults())
			if f := formatFromName(rel); res.SourceFormat != f {
				t.Errorf("SourceFormat %q, want %q", res.SourceFormat, f)
			}
		})
	}
	for rel := range specialCases {
		if !seen[rel] {
			t.Errorf("expected corpus file %s is missing", rel)
		}
	}
}

// checkResult asserts the invariants every Result must hold.
func checkResult(t *testing.T, res *Result, input []byte, o Options) {
	t.Helper()
	if len(res.JPEG) == 0 || len(res.JPEG) > o.MaxBytes {
		t.Fatalf("JPEG is %d bytes, cap %d", len(res.JPEG), o.MaxBytes)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(res.JPEG))
	if err != nil {
		t.Fatalf("output is not a JPEG: %v", err)
	}
	if cfg.Width != res.Width || cfg.Height != res.Height {
		t.Fatalf("output JPEG is %dx%d, Result says %dx%d", cfg.Width, cfg.Height, res.Width, res.Height)
	}
	if max(res.Width, res.Height) > o.MaxSide {
		t.Fatalf("output %dx%d exceeds MaxSide %d", res.Width, res.Height, o.MaxSide)
	}
	// Never upscale: the output long side is the source's or MaxSide.
	srcLong := max(res.SourceWidth, res.SourceHeight)
	if want := min(srcLong, o.MaxSide); max(res.Width, res.Height) != want && len(res.JPEG) < o.MaxBytes/2 {
		t.Fatalf("output long side %d, want %d (source %dx%d)", max(res.Width, res.Height), want, res.SourceWidth, res.SourceHeight)
	}
	sw, sh := res.SourceWidth, res.SourceHeight
	if res.Orientation >= 5 {
		sw, sh = sh, sw
	}
	if (sw > sh) != (res.Width > res.Height) && sw != sh {
		t.Fatalf("aspect flipped: oriented source %dx%d, output %dx%d", sw, sh, res.Width, res.Height)
	}
	if res.Orientation < 1 || res.Orientation > 8 {
		t.Fatalf("Orientation %d", res.Orientation)
	}
	sum := sha256.Sum256(input)
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 %s is not the input's", res.SHA256)
	}
	if res.Quality < 1 || res.Quality > o.Quality {
		t.Fatalf("Quality %d outside 1..%d", res.Quality, o.Quality)
	}
}

func prepareFile(t *testing.T, rel string, o Options) *Result {
	t.Helper()
	res, err := Prepare(context.Background(), readCorpus(t, rel), o)
	if err != nil {
		t.Fatalf("Prepare %s: %v", rel, err)
	}
	return res
}

func decodeOut(t *testing.T, res *Result) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(res.JPEG))
	if err != nil {
		t.Fatalf("decode output: %v", err)
	}
	return img
}

// meanAbsDiff compares two pictures of the same aspect ratio at 96 px wide
// (or tall), returning the mean absolute difference per RGB channel (0..255).
func meanAbsDiff(a, b image.Image) float64 {
	const side = 96
	fa := imaging.Fit(a, side, side, imaging.Box)
	fb := imaging.Resize(b, fa.Bounds().Dx(), fa.Bounds().Dy(), imaging.Box)
	var sum float64
	for i := 0; i < len(fa.Pix); i += 4 {
		for c := 0; c < 3; c++ {
			sum += math.Abs(float64(fa.Pix[i+c]) - float64(fb.Pix[i+c]))
		}
	}
	return sum / float64(len(fa.Pix)/4*3)
}

// testOpts keeps most tests fast (also under -race): a 336-px long side
// exercises the same code as the default 1344.
var testOpts = Options{MaxSide: 336}

// sameContent is the mean-abs-diff threshold for "same picture"; the test
// below checks that mirrored or rotated versions are far above it.
const sameContent = 6.0

func TestOrientationLandscapePortrait(t *testing.T) {
	for _, kind := range []struct {
		prefix string
		ns     []string
		w, h   int
	}{
		{"exif/Landscape_", []string{"0", "1", "2", "3", "4", "5", "6", "6_exif_little_endian", "7", "8"}, 336, 224},
		{"exif/Portrait_", []string{"0", "1", "6", "8"}, 224, 336},
	} {
		ref := decodeOut(t, prepareFile(t, kind.prefix+"1.jpg", testOpts))
		// The comparison must be able to tell a wrong orientation apart.
		for name, wrong := range map[string]image.Image{
			"flipH": imaging.FlipH(ref), "flipV": imaging.FlipV(ref), "rot180": imaging.Rotate180(ref),
		} {
			if d := meanAbsDiff(ref, wrong); d < 3*sameContent {
				t.Fatalf("%s1 %s differs by only %.1f: the content check cannot detect orientation errors", kind.prefix, name, d)
			}
		}
		for _, n := range kind.ns {
			rel := kind.prefix + n + ".jpg"
			res := prepareFile(t, rel, testOpts)
			if res.Width != kind.w || res.Height != kind.h {
				t.Errorf("%s: %dx%d, want %dx%d", rel, res.Width, res.Height, kind.w, kind.h)
				continue
			}
			if d := meanAbsDiff(ref, decodeOut(t, res)); d > sameContent {
				t.Errorf("%s (orientation %d): mean abs diff %.1f from %s1.jpg", rel, res.Orientation, d, kind.prefix)
			}
		}
	}
}

func TestOrientationPNGeXIf(t *testing.T) {
	res := prepareFile(t, "exif/Landscape_6_exif_chunk.png", Options{})
	if res.Orientation != 6 || res.Width != 600 || res.Height != 400 {
		t.Fatalf("got orientation %d, %dx%d; want 6, 600x400", res.Orientation, res.Width, res.Height)
	}
	ref := decodeOut(t, prepareFile(t, "exif/Landscape_1.jpg", testOpts))
	if d := meanAbsDiff(ref, decodeOut(t, res)); d > sameContent {
		t.Fatalf("mean abs diff %.1f from Landscape_1", d)
	}
}

func TestOrientationPhonePortrait(t *testing.T) {
	res := prepareFile(t, "photos/friends_by_Aitzol_Berasategi_orient6.jpg", Options{})
	if res.Orientation != 6 || res.SourceWidth != 3088 || res.SourceHeight != 2048 {
		t.Fatalf("orientation %d source %dx%d", res.Orientation, res.SourceWidth, res.SourceHeight)
	}
	if res.Height != 1344 || res.Width < 890 || res.Width > 892 {
		t.Fatalf("output %dx%d, want 891x1344 (±1)", res.Width, res.Height)
	}
}

func TestBadEXIFStillDecodes(t *testing.T) {
	res := prepareFile(t, "broken/exif_bad_ifd_offset_decodable.jpg", testOpts)
	if res.Orientation != 1 || res.Width != 336 || res.Height != 224 {
		t.Fatalf("orientation %d, %dx%d; want 1 and the stored 336x224", res.Orientation, res.Width, res.Height)
	}
}

func TestAlphaFlattenedOntoWhite(t *testing.T) {
	for _, rel := range []string{
		"formats/product_cutout_transparent.gif",
		"png/product_cutout_rgba.png",
		"png/product_cutout_palette_trns.png",
		"formats/product_cutout_lossless_alpha.webp",
		"formats/product_cutout_lossy_alpha.webp",
		"formats/product_cutout_rgba32_v5.bmp",
	} {
		res := prepareFile(t, rel, testOpts)
		if !res.HadAlpha {
			t.Errorf("%s: HadAlpha false", rel)
		}
		img := decodeOut(t, res)
		b := img.Bounds()
		for _, p := range []image.Point{{b.Min.X + 2, b.Min.Y + 2}, {b.Max.X - 3, b.Min.Y + 2}, {b.Min.X + 2, b.Max.Y - 3}, {b.Max.X - 3, b.Max.Y - 3}} {
			r, g, bl, _ := img.At(p.X, p.Y).RGBA()
			if r>>8 < 245 || g>>8 < 245 || bl>>8 < 245 {
				t.Errorf("%s: corner %v is (%d,%d,%d), want white", rel, p, r>>8, g>>8, bl>>8)
			}
		}
		// The fig in its bowl stays: the centre is not white.
		r, g, bl, _ := img.At((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2).RGBA()
		if r>>8 > 235 && g>>8 > 235 && bl>>8 > 235 {
			t.Errorf("%s: centre is white too", rel)
		}
	}
	res := prepareFile(t, "png/mate_Flow_rgba_white_overlay.png", testOpts)
	if mean := meanLuma(decodeOut(t, res)); !res.HadAlpha || mean < 235 {
		t.Errorf("white overlay: HadAlpha %v, mean %.1f; want true and almost all white", res.HadAlpha, mean)
	}
	for _, rel := range []string{"photos/ColorfulCups_by_Dmitri_Popov.jpg", "png/seeding_gray8.png", "formats/go_video-001_24bit.bmp"} {
		if res := prepareFile(t, rel, testOpts); res.HadAlpha {
			t.Errorf("%s: opaque source reported HadAlpha", rel)
		}
	}
}

func meanLuma(img image.Image) float64 {
	g := imaging.Grayscale(img)
	var s float64
	for i := 0; i < len(g.Pix); i += 4 {
		s += float64(g.Pix[i])
	}
	return s / float64(len(g.Pix)/4)
}

func TestCMYKMatchesRGB(t *testing.T) {
	cmyk := decodeOut(t, prepareFile(t, "formats/ColorfulCups_cmyk.jpg", testOpts))
	rgb := decodeOut(t, prepareFile(t, "photos/ColorfulCups_by_Dmitri_Popov.jpg", testOpts))
	if d := meanAbsDiff(rgb, cmyk); d > 8 {
		t.Fatalf("CMYK copy differs from the RGB original by %.1f per channel", d)
	}
	if d := meanAbsDiff(rgb, imaging.Invert(cmyk)); d < 40 {
		t.Fatalf("inverted CMYK is close too (%.1f): the check cannot detect inversion", d)
	}
}

func TestByteCap(t *testing.T) {
	data := readCorpus(t, "formats/noise_over_1mb_cap.jpg")
	res, err := Prepare(context.Background(), data, Options{MaxBytes: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Quality != 75 || len(res.JPEG) > 1_000_000 || res.Width != 1344 {
		t.Fatalf("quality %d, %d bytes, %dx%d; want q75 under 1,000,000 bytes at 1344", res.Quality, len(res.JPEG), res.Width, res.Height)
	}
	// Far below what q55 reaches at this size: the picture must shrink.
	shrink := Options{MaxSide: 600, MaxBytes: 60_000}
	res, err = Prepare(context.Background(), data, shrink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Quality != minQuality || len(res.JPEG) > shrink.MaxBytes || res.Width >= shrink.MaxSide || res.Width != res.Height {
		t.Fatalf("quality %d, %d bytes, %dx%d; want q%d, <= %d bytes, a square under %d px",
			res.Quality, len(res.JPEG), res.Width, res.Height, minQuality, shrink.MaxBytes, shrink.MaxSide)
	}
	checkResult(t, res, data, shrink.withDefaults())
	if _, err := Prepare(context.Background(), data, Options{MaxSide: 600, MaxBytes: 300}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("300-byte cap: %v, want ErrTooLarge", err)
	}
}

func TestOptions(t *testing.T) {
	data := readCorpus(t, "photos/Painting-Colors_by__herobrine7gamer.jpg")
	res, err := Prepare(context.Background(), data, Options{MaxSide: 336, Quality: 70})
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 336 || res.Height != 224 || res.Quality != 70 {
		t.Fatalf("%dx%d q%d, want 336x224 q70", res.Width, res.Height, res.Quality)
	}
	if _, err := Prepare(context.Background(), data, Options{MaxPixels: 20_000_000}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("24 MP with MaxPixels 20M: %v, want ErrTooLarge", err)
	}
	if _, err := Prepare(context.Background(), data, Options{MaxInputBytes: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxInputBytes 1000: %v, want ErrTooLarge", err)
	}
	small := prepareFile(t, "png/pngsuite_basn3p08.png", Options{})
	if small.Width != 32 || small.Height != 32 {
		t.Fatalf("32x32 input became %dx%d: must not upscale", small.Width, small.Height)
	}
	url := small.DataURL()
	const prefix = "data:image/jpeg;base64,"
	if !strings.HasPrefix(url, prefix) {
		t.Fatalf("DataURL prefix: %.40q", url)
	}
	raw, err := base64.StdEncoding.DecodeString(url[len(prefix):])
	if err != nil || !bytes.Equal(raw, small.JPEG) {
		t.Fatalf("DataURL payload does not decode to the JPEG (err %v)", err)
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Prepare(ctx, readCorpus(t, "exif/Landscape_1.jpg"), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestBombHeadersDoNotAllocate: images whose headers claim huge sizes are
// refused before any pixel buffer exists.
func TestBombHeadersDoNotAllocate(t *testing.T) {
	inputs := map[string][]byte{
		"jpeg 65500x65500":      readCorpus(t, "broken/jpeg_header_65500x65500.jpg"),
		"png 100000x100000":     readCorpus(t, "broken/png_header_100000x100000.png"),
		"gif 65535x65535":       gifHeader(65535, 65535),
		"bmp 100000x100000":     bmpHeader(100000, 100000),
		"tiff 100000x100000":    tiffHeader(100000, 100000),
		"webp VP8X 16384x16384": webpVP8XHeader(16384, 16384),
		"webp VP8L 16384x16384": webpVP8LHeader(16384, 16384),
		"webp VP8 16383x16383":  webpVP8Header(16383, 16383),
	}
	for name, data := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Prepare(context.Background(), data, Options{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
			t.Errorf("%s: allocated %d bytes before refusing", name, d)
		}
	}
}

func TestSourceSizesFromHeaders(t *testing.T) {
	// The synthetic headers must really declare what the bomb test claims.
	for name, c := range map[string]struct {
		data   []byte
		format jobs.FileType
		w, h   int
	}{
		"gif":  {gifHeader(65535, 65535), jobs.FileGIF, 65535, 65535},
		"bmp":  {bmpHeader(100000, 100000), jobs.FileBMP, 100000, 100000},
		"tiff": {tiffHeader(100000, 100000), jobs.FileTIFF, 100000, 100000},
		"vp8x": {webpVP8XHeader(16384, 16384), jobs.FileWebP, 16384, 16384},
		"vp8l": {webpVP8LHeader(16384, 16384), jobs.FileWebP, 16384, 16384},
		"vp8":  {webpVP8Header(16383, 16383), jobs.FileWebP, 16383, 16383},
	} {
		if f := sniff.Sniff("", c.data); f != c.format {
			t.Errorf("%s: sniffed %q", name, f)
			continue
		}
		cfg, err := decodeConfig(c.format, c.data)
		if err != nil || cfg.Width != c.w || cfg.Height != c.h {
			t.Errorf("%s: config %dx%d err %v, want %dx%d", name, cfg.Width, cfg.Height, err, c.w, c.h)
		}
	}
}

// TestJPEGDecoderErrorsAreErrCorrupt: a JPEG whose header passes
// DecodeConfig (which stops at the first SOS) but whose SOS names a component
// the frame does not have makes libjpeg call error_exit; that must come back
// as ErrCorrupt with libjpeg's reason, not end the process.
func TestJPEGDecoderErrorsAreErrCorrupt(t *testing.T) {
	data := readCorpus(t, "formats/seeding_really_jpeg.png")
	sos := bytes.Index(data, []byte{0xFF, 0xDA})
	if sos < 0 {
		t.Fatal("no SOS marker in the test file")
	}
	bad := append([]byte{}, data...)
	bad[sos+5] = 0x77 // first component selector of the scan
	if _, err := jpeg.DecodeConfig(bytes.NewReader(bad)); err != nil {
		t.Fatalf("the header check must pass for this test to reach the decoder: %v", err)
	}
	res, err := Prepare(context.Background(), bad, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(strings.ToLower(err.Error()), "component") {
		t.Fatalf("got %v (result %v), want ErrCorrupt about the component", err, res != nil)
	}
	// Cut before the first scan: refused from the header.
	if _, err := Prepare(context.Background(), data[:sos], Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut before the scan: %v, want ErrCorrupt", err)
	}
}

// scanBomb returns a progressive JPEG with its last scan repeated n times.
func scanBomb(t *testing.T, n int) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "progressive_16x16.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndex(data, []byte{0xFF, 0xDA})
	eoi := bytes.LastIndex(data, []byte{0xFF, 0xD9})
	if last < 0 || eoi < last {
		t.Fatal("test file has no final scan before EOI")
	}
	out := append([]byte{}, data[:eoi]...)
	for range n {
		out = append(out, data[last:eoi]...)
	}
	return append(out, 0xFF, 0xD9)
}

// TestProgressiveScanLimit: a small progressive JPEG with thousands of scans
// (each a pass over the whole coefficient buffer) is refused by the libjpeg
// backend; a normal number of scans decodes.
func TestProgressiveScanLimit(t *testing.T) {
	if res, err := Prepare(context.Background(), scanBomb(t, 0), Options{}); err != nil || res.Width != 16 {
		t.Fatalf("progressive 16x16: %v", err)
	}
	_, err := Prepare(context.Background(), scanBomb(t, 2000), Options{})
	if JPEGBackend == "image/jpeg" {
		// image/jpeg has no scan limit (and rejects a repeated refinement
		// scan); it just has to end cleanly.
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("pure Go: %v", err)
		}
		return
	}
	// libjpeg tolerates a few repeated scans (with a warning), so the
	// failure below comes from the limit, not from the repetition.
	if res, err := Prepare(context.Background(), scanBomb(t, 5), Options{}); err != nil || res.Width != 16 {
		t.Fatalf("progressive 16x16 with 5 extra scans: %v", err)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "scans") {
		t.Fatalf("2000 scans: %v, want ErrCorrupt about the scan limit", err)
	}
}

// TestNotAnImage: whatever jobs/sniff says that is not a decodable image
// format is refused as unsupported, before any decoder runs.
func TestNotAnImage(t *testing.T) {
	for name, c := range map[string]struct {
		data []byte
		msg  string
	}{
		"pdf":     {[]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), "unrecognised image format"},
		"text":    {[]byte("BMW sales figures for the third quarter"), "unrecognised image format"},
		"html":    {[]byte("<!doctype html><p>hi"), "unrecognised image format"},
		"zip":     {[]byte("PK\x05\x06" + strings.Repeat("\x00", 18)), "unrecognised image format"},
		"svg":     {[]byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), "SVG images are not supported"},
		"bigtiff": {[]byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"), "BigTIFF"},
	} {
		_, err := Prepare(context.Background(), c.data, Options{})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrUnsupported with %q", name, err, c.msg)
		}
	}
}
