package imageprep

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

// addSmallCorpus seeds a fuzz target with the corpus files up to maxLen
// bytes and with prefixes of the larger ones.
func addSmallCorpus(f *testing.F, maxLen int) {
	root := corpusDir(f)
	for _, sub := range []string{"exif", "png", "formats", "broken"} {
		ents, err := os.ReadDir(filepath.Join(root, sub))
		if err != nil {
			f.Fatalf("corpus: %v", err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(root, sub, e.Name()))
			if err != nil {
				f.Fatalf("corpus: %v", err)
			}
			if len(b) > maxLen {
				b = b[:maxLen]
			}
			f.Add(b)
		}
	}
}

func FuzzEXIF(f *testing.F) {
	for _, o := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, v := range []uint32{0, 1, 6, 8, 9} {
			f.Add(tiffBlock(o, 0x0112, 3, v))
		}
	}
	for _, rel := range []string{"exif/Landscape_5.jpg", "broken/exif_bad_ifd_offset_decodable.jpg"} {
		if b, err := jpegEXIF(readCorpus(f, rel)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseOrientation(data)
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d (err %v)", o, err)
		}
		// The same bytes in each container give the same answer.
		jpg := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0, 0}, "Exif\x00\x00"...)
		if len(data)+8 <= 0xFFFF {
			binary.BigEndian.PutUint16(jpg[4:6], uint16(len(data)+8))
			jpg = append(jpg, data...)
			if err == nil && orientationOf(jobs.FileJPEG, jpg) != o {
				t.Fatalf("JPEG container disagrees")
			}
		}
		for _, format := range []jobs.FileType{jobs.FileJPEG, jobs.FilePNG, jobs.FileWebP, jobs.FileTIFF} {
			if o := orientationOf(format, data); o < 1 || o > 8 {
				t.Fatalf("%s: orientation %d", format, o)
			}
		}
	})
}

// FuzzPrepare: any input ends as a valid Result or one of the sentinel
// errors, never a panic or an unbounded allocation.
func FuzzPrepare(f *testing.F) {
	addSmallCorpus(f, 64<<10)
	f.Add(gifHeader(300, 300))
	f.Add(bmpHeader(64, 64))
	f.Add(tiffHeader(64, 64))
	f.Add(webpVP8LHeader(64, 64))
	opts := Options{MaxSide: 256, MaxBytes: 200_000, MaxPixels: 4 << 20, MaxInputBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Prepare(context.Background(), data, opts)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(res.JPEG) > opts.MaxBytes || res.Width > opts.MaxSide || res.Height > opts.MaxSide {
			t.Fatalf("result %dx%d, %d bytes", res.Width, res.Height, len(res.JPEG))
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(res.JPEG))
		if err != nil || cfg.Width != res.Width || cfg.Height != res.Height {
			t.Fatalf("output JPEG %dx%d (err %v), Result %dx%d", cfg.Width, cfg.Height, err, res.Width, res.Height)
		}
	})
}
