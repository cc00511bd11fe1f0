//go:build !cgo || imageprep_purego

package imageprep

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// JPEGBackend names the JPEG codec compiled in: "libjpeg-turbo" (cgo) or
// "image/jpeg" (pure Go, build tag imageprep_purego or CGO_ENABLED=0).
const JPEGBackend = "image/jpeg"

// decodeJPEG decodes data with image/jpeg at full size (minW and minH are
// only used by the libjpeg backend); cfg is the header from DecodeConfig.
// image/jpeg fails with io.ErrUnexpectedEOF on a file that merely lacks its
// final EOI marker, so a failed decode of data not ending in FFD9 is retried
// once with FFD9 appended; a file whose scan data is cut short still fails
// (ErrCorrupt).
func decodeJPEG(data []byte, cfg image.Config, _, _ int, maxPixels int64) (image.Image, error) {
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("%w: JPEG header says %dx%d, over the %d-pixel limit",
			ErrTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	var ue jpeg.UnsupportedError
	if err != nil && !errors.As(err, &ue) && !bytes.HasSuffix(data, []byte{0xFF, 0xD9}) {
		fixed := make([]byte, len(data)+2)
		copy(fixed, data)
		fixed[len(data)], fixed[len(data)+1] = 0xFF, 0xD9
		img, err = jpeg.Decode(bytes.NewReader(fixed))
		if err != nil {
			return nil, fmt.Errorf("%w: JPEG is truncated: data ends without an end marker (%v)", ErrCorrupt, err)
		}
	}
	if err != nil {
		return nil, jpegErr(err)
	}
	return img, nil
}

func jpegErr(err error) error {
	var ue jpeg.UnsupportedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: JPEG: %v", ErrUnsupported, err)
	}
	return fmt.Errorf("%w: JPEG: %v", ErrCorrupt, err)
}

// encodeJPEG encodes an opaque NRGBA image (alpha is ignored) at quality q.
func encodeJPEG(img *image.NRGBA, q int) ([]byte, error) {
	// image/jpeg has a fast path for *image.RGBA; an opaque NRGBA has the
	// same bytes, so reuse its pixels (alpha is forced to 0xFF by flatten).
	rgba := &image.RGBA{Pix: img.Pix, Stride: img.Stride, Rect: img.Rect}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	return buf.Bytes(), nil
}
