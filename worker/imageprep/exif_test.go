package imageprep

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/sniff"
)

// tiffBlock builds a minimal EXIF TIFF block with one IFD0 entry.
func tiffBlock(order binary.AppendByteOrder, tag, typ uint16, val uint32) []byte {
	var b []byte
	if order.String() == binary.LittleEndian.String() {
		b = []byte("II")
	} else {
		b = []byte("MM")
	}
	b = order.AppendUint16(b, 42)
	b = order.AppendUint32(b, 8)
	b = order.AppendUint16(b, 2)
	// an unrelated entry first (ImageDescription offset), then ours
	b = order.AppendUint16(b, 0x010E)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint16(b, tag)
	b = order.AppendUint16(b, typ)
	b = order.AppendUint32(b, 1)
	if typ == 3 {
		b = order.AppendUint16(b, uint16(val))
		b = order.AppendUint16(b, 0)
	} else {
		b = order.AppendUint32(b, val)
	}
	return order.AppendUint32(b, 0)
}

func TestParseOrientation(t *testing.T) {
	for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		for v := uint32(0); v <= 9; v++ {
			want := int(v)
			if v < 1 || v > 8 {
				want = 1
			}
			for _, typ := range []uint16{3, 4} {
				got, err := parseOrientation(tiffBlock(order, 0x0112, typ, v))
				if err != nil || got != want {
					t.Errorf("%v type %d value %d: got %d, %v; want %d", order, typ, v, got, err, want)
				}
			}
		}
		if got, err := parseOrientation(tiffBlock(order, 0x0110, 3, 6)); err != nil || got != 1 {
			t.Errorf("%v: no Orientation tag: got %d, %v; want 1", order, got, err)
		}
	}
	good := tiffBlock(binary.BigEndian, 0x0112, 3, 6)
	for name, bad := range map[string][]byte{
		"short":           good[:6],
		"bad order":       append([]byte("XX"), good[2:]...),
		"bad magic":       append([]byte("MM\x00\x2B"), good[4:]...),
		"ifd past end":    append(append([]byte{}, good[:4]...), 0, 0, 0xFF, 0xFF),
		"entries cut off": good[:20],
		"wrong type":      tiffBlock(binary.BigEndian, 0x0112, 5, 6),
	} {
		if got, err := parseOrientation(bad); err == nil || got != 1 {
			t.Errorf("%s: got %d, %v; want 1 and an error", name, got, err)
		}
	}
}

func TestContainerEXIF(t *testing.T) {
	block := tiffBlock(binary.LittleEndian, 0x0112, 3, 8)
	// JPEG: SOI, APP0, APP1 Exif, SOS.
	app := func(marker byte, payload []byte) []byte {
		b := []byte{0xFF, marker}
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+2))
		return append(b, payload...)
	}
	jpg := []byte{0xFF, 0xD8}
	jpg = append(jpg, app(0xE0, []byte("JFIF\x00\x01\x02"))...)
	jpg = append(jpg, app(0xE1, append([]byte("Exif\x00\x00"), block...))...)
	jpg = append(jpg, 0xFF, 0xDA, 0, 2)
	if o := orientationOf(jobs.FileJPEG, jpg); o != 8 {
		t.Errorf("JPEG APP1: orientation %d, want 8", o)
	}
	// An Exif APP1 after the first scan is not metadata.
	late := append([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2}, app(0xE1, append([]byte("Exif\x00\x00"), block...))...)
	if o := orientationOf(jobs.FileJPEG, late); o != 1 {
		t.Errorf("APP1 after SOS: orientation %d, want 1", o)
	}
	// XMP APP1 is skipped.
	xmp := append([]byte{0xFF, 0xD8}, app(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x/>"))...)
	if _, err := jpegEXIF(xmp); !errors.Is(err, errNoEXIF) {
		t.Errorf("XMP only: %v, want errNoEXIF", err)
	}
	// A segment length running past the end is an error, not a panic.
	if _, err := jpegEXIF([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xF0, 'E'}); err == nil || errors.Is(err, errNoEXIF) {
		t.Errorf("overlong segment: %v, want a parse error", err)
	}

	pngChunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(b, typ...)
		b = append(b, data...)
		return append(b, 0, 0, 0, 0) // CRC is not checked here
	}
	pngData := []byte("\x89PNG\r\n\x1a\n")
	pngData = append(pngData, pngChunk("IHDR", make([]byte, 13))...)
	pngData = append(pngData, pngChunk("eXIf", block)...)
	if o := orientationOf(jobs.FilePNG, pngData); o != 8 {
		t.Errorf("PNG eXIf: orientation %d, want 8", o)
	}
	withPrefix := []byte("\x89PNG\r\n\x1a\n")
	withPrefix = append(withPrefix, pngChunk("eXIf", append([]byte("Exif\x00\x00"), block...))...)
	if o := orientationOf(jobs.FilePNG, withPrefix); o != 8 {
		t.Errorf("PNG eXIf with Exif prefix: orientation %d, want 8", o)
	}

	webpData := riffWebP(webpChunk("VP8X", make([]byte, 10)), webpChunk("ICCP", []byte{1, 2, 3}), webpChunk("EXIF", block))
	if o := orientationOf(jobs.FileWebP, webpData); o != 8 {
		t.Errorf("WebP EXIF: orientation %d, want 8", o)
	}
	if o := orientationOf(jobs.FileTIFF, block); o != 8 {
		t.Errorf("TIFF IFD0: orientation %d, want 8", o)
	}
}

func TestCorpusEXIFBlocks(t *testing.T) {
	for rel, want := range map[string]int{
		"exif/Landscape_0.jpg":                            1,
		"exif/Landscape_5.jpg":                            5,
		"exif/Landscape_6_exif_little_endian.jpg":         6,
		"exif/Portrait_8.jpg":                             8,
		"photos/friends_by_Aitzol_Berasategi_orient6.jpg": 6,
		"photos/Kleiber_by_Lukas_Baubkus.jpg":             1,
		"exif/Landscape_6_exif_chunk.png":                 6,
	} {
		data := readCorpus(t, rel)
		if o := orientationOf(sniff.Sniff("", data), data); o != want {
			t.Errorf("%s: orientation %d, want %d", rel, o, want)
		}
	}
	data := readCorpus(t, "broken/exif_bad_ifd_offset_decodable.jpg")
	block, err := jpegEXIF(data)
	if err != nil {
		t.Fatalf("bad-IFD file: the APP1 segment itself is intact: %v", err)
	}
	if _, err := parseOrientation(block); err == nil {
		t.Fatalf("bad-IFD file: parseOrientation accepted an IFD offset past the block")
	}
}

// TestPrepareGIFFrameSmallerThanScreen: a GIF whose first frame covers only
// part of its logical screen is placed on a transparent (so white) canvas.
func TestPrepareGIFFrameSmallerThanScreen(t *testing.T) {
	frame := image.NewPaletted(image.Rect(1, 1, 3, 2), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}})
	var buf bytes.Buffer
	err := gif.EncodeAll(&buf, &gif.GIF{
		Image:  []*image.Paletted{frame},
		Delay:  []int{0},
		Config: image.Config{ColorModel: frame.Palette, Width: 4, Height: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	res, err := Prepare(context.Background(), b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 4 || res.Height != 2 || !res.HadAlpha {
		t.Fatalf("%dx%d HadAlpha %v, want 4x2 with alpha", res.Width, res.Height, res.HadAlpha)
	}
	img := decodeOut(t, res)
	r, g, _, _ := img.At(0, 0).RGBA()
	if r>>8 < 200 || g>>8 < 200 {
		t.Errorf("outside the frame is (%d,%d,..), want white", r>>8, g>>8)
	}
	if !bytes.HasPrefix(res.JPEG, []byte{0xFF, 0xD8}) {
		t.Errorf("not a JPEG")
	}
}
