package imageprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"

	"github.com/disintegration/imaging"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/sniff"
)

// Sentinel errors. Every error Prepare returns for bad input wraps exactly
// one of them together with a human-readable reason; all three are
// permanent: the same bytes will fail the same way on retry.
var (
	// ErrUnsupported: the bytes are not an image format Prepare decodes
	// (unknown bytes, SVG, animated WebP, JPEG-compressed TIFF, exotic
	// codings).
	ErrUnsupported = errors.New("unsupported image")
	// ErrTooLarge: the input, or the pixel count its header declares, is
	// over the limits in Options, or no output fits Options.MaxBytes.
	ErrTooLarge = errors.New("image too large")
	// ErrCorrupt: a recognised format whose data is damaged or truncated
	// (this includes empty input and decoder panics).
	ErrCorrupt = errors.New("corrupt image")
)

// Defaults applied by Prepare to zero (or negative) Options fields.
const (
	DefaultMaxSide       = 1344 // four 336-px Llama 4 tiles on the long side
	DefaultQuality       = 85
	DefaultMaxBytes      = 1 << 20
	DefaultMaxPixels     = 100_000_000
	DefaultMaxInputBytes = 50 << 20
)

// minQuality is the lowest JPEG quality the size loop steps down to before
// it starts shrinking the picture (unless Options.Quality is lower still).
const minQuality = 55

// qualityStep is how far the size loop lowers the quality each time.
const qualityStep = 10

// jpegDecodeMargin: a large JPEG is decoded at the smallest libjpeg DCT
// scale that still leaves at least this factor above the target size, so
// the final Lanczos resize does real anti-aliasing work. Measured on the
// photos set against full decode + Lanczos (BENCH.md): margin 1.0 gives mean
// 47.8 dB PSNR but 34.5 dB worst case, 1.3 gives 52.1 dB mean, 45.2 dB worst,
// for about 20% more CPU.
const jpegDecodeMargin = 1.3

// resizeFilter is the final resampling filter (see BENCH.md for the choice).
var resizeFilter = imaging.Lanczos

// Options control Prepare. The zero value is valid: every zero or negative
// field takes its default.
type Options struct {
	// MaxSide is the longest side of the output in pixels; smaller images
	// are never upscaled. Default 1344 (DefaultMaxSide).
	MaxSide int
	// Quality is the first JPEG quality tried (1..100). Default 85. When the
	// output is over MaxBytes the quality steps down by 10 to 55 (or stays at
	// Quality if that is lower) and then the picture shrinks until it fits.
	Quality int
	// MaxBytes caps the encoded JPEG (pass the model profile's max image
	// bytes). Default 1 MiB (1<<20).
	MaxBytes int
	// MaxPixels refuses sources whose header declares more pixels than this,
	// before any pixel buffer is allocated. Default 100,000,000.
	MaxPixels int64
	// MaxInputBytes refuses inputs larger than this. Default 50 MiB.
	MaxInputBytes int64
}

func (o Options) withDefaults() Options {
	if o.MaxSide <= 0 {
		o.MaxSide = DefaultMaxSide
	}
	if o.Quality <= 0 {
		o.Quality = DefaultQuality
	}
	if o.Quality > 100 {
		o.Quality = 100
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.MaxInputBytes <= 0 {
		o.MaxInputBytes = DefaultMaxInputBytes
	}
	return o
}

// Result is a prepared image.
type Result struct {
	JPEG          []byte // the encoded output, at most Options.MaxBytes long
	Width, Height int    // output size, after orientation
	// SourceFormat is what jobs/sniff found: jobs.FileJPEG, FilePNG,
	// FileGIF, FileWebP, FileBMP, FileTIFF, FileAVIF or FileHEIC.
	SourceFormat jobs.FileType
	// SourceWidth and SourceHeight are the stored pixels of the source, before
	// orientation (for a GIF, its logical screen).
	SourceWidth, SourceHeight int
	// Orientation is the EXIF orientation applied, 1..8 (1 when the source has
	// none, an invalid value such as 0, or an unreadable EXIF block). For
	// AVIF and HEIC it is the equivalent of the irot/imir properties (their
	// EXIF orientation is ignored, as HEIF readers do).
	Orientation int
	// FirstFrame, when set, says that the source holds several frames or
	// pages and only the first was used: "first of 12 frames (animated
	// GIF)", "first of 3 pages (multi-page TIFF)", "first frame (AVIF image
	// sequence)".
	FirstFrame string
	// HadAlpha reports that the source had transparent or semi-transparent
	// pixels, which were flattened onto white.
	HadAlpha bool
	// Quality is the JPEG quality finally used.
	Quality int
	// SHA256 is the hex SHA-256 of the input bytes (for dedupe).
	SHA256 string
}

// DataURL returns the output as "data:image/jpeg;base64,...".
func (r *Result) DataURL() string {
	const prefix = "data:image/jpeg;base64,"
	buf := make([]byte, len(prefix)+base64.StdEncoding.EncodedLen(len(r.JPEG)))
	copy(buf, prefix)
	base64.StdEncoding.Encode(buf[len(prefix):], r.JPEG)
	return string(buf)
}

// Prepare decodes one image and returns it as a JPEG fitted for the model:
// EXIF orientation applied, transparency flattened onto white, long side at
// most MaxSide, at most MaxBytes long. The format comes from the content
// (jobs/sniff, the project's one sniffer), never from a name. Sizes are
// checked from the header before any pixel buffer is allocated. A JPEG
// that only lacks its end marker is processed; truncated or damaged data
// gives ErrCorrupt. Errors wrap ErrUnsupported, ErrTooLarge or ErrCorrupt,
// or are ctx.Err() when the context ends first (or, in theory, an encoder
// failure, which has no sentinel). A panic in a decoder becomes ErrCorrupt.
func Prepare(ctx context.Context, data []byte, opts Options) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res = nil
			err = fmt.Errorf("%w: decoder panicked: %v", ErrCorrupt, r)
		}
	}()
	o := opts.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input (0 bytes)", ErrCorrupt)
	}
	if int64(len(data)) > o.MaxInputBytes {
		return nil, fmt.Errorf("%w: input is %d bytes, over the %d-byte limit", ErrTooLarge, len(data), o.MaxInputBytes)
	}
	sum := sha256.Sum256(data)
	format := sniff.Sniff("", data)
	switch format {
	case jobs.FileJPEG, jobs.FilePNG, jobs.FileGIF, jobs.FileWebP, jobs.FileBMP, jobs.FileTIFF, jobs.FileAVIF, jobs.FileHEIC:
	case jobs.FileSVG:
		return nil, fmt.Errorf("%w: SVG images are not supported", ErrUnsupported)
	default: // not an image (text, a document, an archive, unknown bytes)
		return nil, fmt.Errorf("%w: unrecognised image format (%d bytes)", ErrUnsupported, len(data))
	}
	if format == jobs.FileTIFF && isBigTIFF(data) {
		return nil, fmt.Errorf("%w: BigTIFF images are not supported", ErrUnsupported)
	}
	if format == jobs.FileWebP && webpAnimated(data) {
		return nil, fmt.Errorf("%w: animated WebP is not supported", ErrUnsupported)
	}

	var cfg image.Config
	var heif heifInfo
	if format == jobs.FileAVIF || format == jobs.FileHEIC {
		cfg, heif, err = heifConfig(format, data)
	} else {
		cfg, err = decodeConfig(format, data)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s header declares %dx%d pixels", ErrCorrupt, format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > o.MaxPixels {
		return nil, fmt.Errorf("%w: %s header declares %dx%d = %d pixels, over the %d-pixel limit",
			ErrTooLarge, format, cfg.Width, cfg.Height, px, o.MaxPixels)
	}
	if heif.MaxPixels > o.MaxPixels {
		return nil, fmt.Errorf("%w: %s header declares an item of %d pixels, over the %d-pixel limit",
			ErrTooLarge, format, heif.MaxPixels, o.MaxPixels)
	}
	orient := orientationOf(format, data)
	if format == jobs.FileAVIF || format == jobs.FileHEIC {
		orient = heif.Orientation
	}
	tw, th := fit(cfg.Width, cfg.Height, o.MaxSide)

	src, err := decode(format, data, cfg, heif, tw, th, o.MaxPixels)
	if err != nil {
		return nil, err
	}
	if b := src.Bounds(); format == jobs.FileAVIF || format == jobs.FileHEIC {
		// The decoded size decides (a clean aperture crops).
		tw, th = fit(b.Dx(), b.Dy(), o.MaxSide)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// JPEG has no transparency; skip scanning its pixels.
	hadAlpha := format != jobs.FileJPEG && !opaque(src)

	render := func(w, h int) *image.NRGBA {
		var m *image.NRGBA
		if b := src.Bounds(); b.Dx() == w && b.Dy() == h {
			m = imaging.Clone(src)
		} else if !hadAlpha {
			m = resize(src, w, h) // fixed point, for opaque RGBA and Gray
		} else {
			m = imaging.Resize(src, w, h, resizeFilter)
		}
		if hadAlpha {
			// An opaque source resizes to alpha 0xFF everywhere (imaging's
			// weights sum to 1), so only sources with alpha need this.
			flattenOnWhite(m)
		}
		return orientImage(m, orient)
	}

	out := render(tw, th)
	q := o.Quality
	floor := min(minQuality, q)
	var enc []byte
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		enc, err = encodeJPEG(out, q)
		if err != nil {
			// Not the input's fault (the encoder only fails on resource
			// exhaustion): no sentinel, so callers may retry.
			return nil, err
		}
		if len(enc) <= o.MaxBytes || q <= floor {
			break
		}
		q = max(q-qualityStep, floor)
	}
	for len(enc) > o.MaxBytes {
		// Shrink by the square root of the size ratio (bytes scale roughly
		// with area), a little more to converge in one or two steps.
		f := math.Sqrt(float64(o.MaxBytes)/float64(len(enc))) * 0.95
		f = min(max(f, 0.5), 0.95)
		tw, th = max(int(float64(tw)*f), 1), max(int(float64(th)*f), 1)
		if tw < 16 || th < 16 {
			return nil, fmt.Errorf("%w: no JPEG of this image fits in %d bytes", ErrTooLarge, o.MaxBytes)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = render(tw, th)
		if enc, err = encodeJPEG(out, q); err != nil {
			return nil, err
		}
	}
	b := out.Bounds()
	return &Result{
		JPEG:         enc,
		Width:        b.Dx(),
		Height:       b.Dy(),
		SourceFormat: format,
		SourceWidth:  cfg.Width,
		SourceHeight: cfg.Height,
		Orientation:  orient,
		FirstFrame:   firstFrame(format, data, heif),
		HadAlpha:     hadAlpha,
		Quality:      q,
		SHA256:       hex.EncodeToString(sum[:]),
	}, nil
}

// fit returns w x h scaled so that the long side is at most maxSide,
// keeping the aspect ratio (rounded, at least 1 pixel); never upscales.
func fit(w, h, maxSide int) (int, int) {
	long := max(w, h)
	if long <= maxSide {
		return w, h
	}
	s := float64(maxSide) / float64(long)
	fw := max(int(math.Round(float64(w)*s)), 1)
	fh := max(int(math.Round(float64(h)*s)), 1)
	if w >= h {
		fw = maxSide
	} else {
		fh = maxSide
	}
	return fw, fh
}

// decodeConfig reads only the header of data.
func decodeConfig(format jobs.FileType, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	var cfg image.Config
	var err error
	switch format {
	case jobs.FileJPEG:
		cfg, err = jpeg.DecodeConfig(r)
	case jobs.FilePNG:
		cfg, err = png.DecodeConfig(r)
	case jobs.FileGIF:
		cfg, err = gif.DecodeConfig(r)
	case jobs.FileWebP:
		cfg, err = webp.DecodeConfig(r)
	case jobs.FileBMP:
		cfg, err = bmp.DecodeConfig(r)
	case jobs.FileTIFF:
		cfg, err = tiff.DecodeConfig(r)
	default:
		return cfg, fmt.Errorf("%w: %s", ErrUnsupported, format)
	}
	if err != nil {
		return cfg, classify(format, "read header", err)
	}
	return cfg, nil
}

// decode decodes the pixels. JPEG goes to the compiled-in backend, which may
// decode at a reduced scale no smaller than tw x th.
func decode(format jobs.FileType, data []byte, cfg image.Config, heif heifInfo, tw, th int, maxPixels int64) (image.Image, error) {
	r := bytes.NewReader(data)
	var img image.Image
	var err error
	switch format {
	case jobs.FileJPEG:
		mw := min(int(math.Ceil(float64(tw)*jpegDecodeMargin)), cfg.Width)
		mh := min(int(math.Ceil(float64(th)*jpegDecodeMargin)), cfg.Height)
		return decodeJPEG(data, cfg, mw, mh, maxPixels)
	case jobs.FilePNG:
		img, err = png.Decode(r)
	case jobs.FileGIF:
		img, err = gif.Decode(r) // first frame only
		if err == nil && img.Bounds() != image.Rect(0, 0, cfg.Width, cfg.Height) {
			// A first frame smaller than the logical screen: place it on a
			// transparent canvas of the screen's size.
			canvas := image.NewNRGBA(image.Rect(0, 0, cfg.Width, cfg.Height))
			draw.Draw(canvas, img.Bounds(), img, img.Bounds().Min, draw.Src)
			img = canvas
		}
	case jobs.FileWebP:
		img, err = webp.Decode(r)
	case jobs.FileBMP:
		img, err = bmp.Decode(r)
	case jobs.FileTIFF:
		img, err = tiff.Decode(r) // the first page only
	case jobs.FileAVIF, jobs.FileHEIC:
		return decodeHEIF(format, data, heif)
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, format)
	}
	if err != nil {
		return nil, classify(format, "decode", err)
	}
	return img, nil
}

// classify wraps a decoder error in the matching sentinel.
func classify(format jobs.FileType, stage string, err error) error {
	var (
		jpegUE jpeg.UnsupportedError
		pngUE  png.UnsupportedError
		tiffUE tiff.UnsupportedError
	)
	switch {
	case errors.As(err, &jpegUE), errors.As(err, &pngUE), errors.As(err, &tiffUE), errors.Is(err, bmp.ErrUnsupported):
		return fmt.Errorf("%w: %s %s: %v", ErrUnsupported, format, stage, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s %s: data ends early (truncated file): %v", ErrCorrupt, format, stage, err)
	}
	return fmt.Errorf("%w: %s %s: %v", ErrCorrupt, format, stage, err)
}

// webpAnimated reports whether a WebP has the VP8X animation flag, which
// x/image/webp cannot decode.
func webpAnimated(data []byte) bool {
	if len(data) < 21 || string(data[12:16]) != "VP8X" || binary.LittleEndian.Uint32(data[16:20]) < 10 {
		return false
	}
	const animationBit = 1 << 1
	return data[20]&animationBit != 0
}

// isBigTIFF reports a BigTIFF header (version 43 instead of 42), which
// jobs/sniff counts as TIFF but x/image/tiff cannot read.
func isBigTIFF(data []byte) bool {
	return bytes.HasPrefix(data, []byte("II+\x00")) || bytes.HasPrefix(data, []byte("MM\x00+"))
}

// opaque reports whether every pixel of img is fully opaque.
func opaque(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	return false
}

// flattenOnWhite composites straight-alpha pixels onto white in place and
// leaves every pixel opaque.
func flattenOnWhite(m *image.NRGBA) {
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := m.Pix[m.PixOffset(b.Min.X, y):m.PixOffset(b.Max.X, y)]
		for i := 0; i+3 < len(row); i += 4 {
			a := uint32(row[i+3])
			if a == 0xFF {
				continue
			}
			bg := 0xFF * (0xFF - a)
			row[i] = uint8((uint32(row[i])*a + bg + 0x7F) / 0xFF)
			row[i+1] = uint8((uint32(row[i+1])*a + bg + 0x7F) / 0xFF)
			row[i+2] = uint8((uint32(row[i+2])*a + bg + 0x7F) / 0xFF)
			row[i+3] = 0xFF
		}
	}
}

// orientImage applies an EXIF orientation (1..8) so the picture is upright.
func orientImage(m *image.NRGBA, orientation int) *image.NRGBA {
	switch orientation {
	case 2:
		return imaging.FlipH(m)
	case 3:
		return imaging.Rotate180(m)
	case 4:
		return imaging.FlipV(m)
	case 5:
		return imaging.Transpose(m)
	case 6:
		return imaging.Rotate270(m)
	case 7:
		return imaging.Transverse(m)
	case 8:
		return imaging.Rotate90(m)
	}
	return m
}
