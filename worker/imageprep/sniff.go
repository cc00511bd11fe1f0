package imageprep

import (
	"bytes"
	"encoding/binary"
)

// Format names returned by Sniff and stored in Result.SourceFormat.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatGIF  = "gif"
	FormatWebP = "webp"
	FormatBMP  = "bmp"
	FormatTIFF = "tiff"
	FormatHEIC = "heic"
	FormatAVIF = "avif"
	FormatSVG  = "svg"
)

// sniffLen is how many leading bytes Sniff looks at at most; callers that
// stream can pass a prefix of this length.
const sniffLen = 512

// Sniff names the image format of data from its leading bytes (the content,
// never a file name): "jpeg", "png", "gif", "webp", "bmp", "tiff", "heic",
// "avif", "svg", or "" when the bytes are not a recognised image. Only the
// first 512 bytes are examined. Recognising a format does not mean Prepare
// can decode it (HEIC, AVIF and SVG are refused with ErrUnsupported).
func Sniff(head []byte) string {
	if len(head) > sniffLen {
		head = head[:sniffLen]
	}
	switch {
	case len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return FormatGIF
	case len(head) >= 12 && bytes.Equal(head[:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WEBP")):
		return FormatWebP
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return FormatTIFF
	case isBMP(head):
		return FormatBMP
	}
	if f := sniffISOBMFF(head); f != "" {
		return f
	}
	if isSVG(head) {
		return FormatSVG
	}
	return ""
}

// isBMP checks the "BM" signature and, when the bytes are there, that the
// DIB header size is one of the sizes Windows defines, so that text starting
// with "BM" is not taken for a bitmap.
func isBMP(head []byte) bool {
	if len(head) < 2 || head[0] != 'B' || head[1] != 'M' {
		return false
	}
	if len(head) < 18 {
		return len(head) >= 14
	}
	switch binary.LittleEndian.Uint32(head[14:18]) {
	case 12, 16, 40, 52, 56, 64, 108, 124:
		return true
	}
	return false
}

// sniffISOBMFF recognises HEIF-family files (an ISO base media "ftyp" box):
// AVIF by its avif/avis brand, HEIC by the HEVC brands or the generic
// mif1/msf1 brands without an AVIF brand.
func sniffISOBMFF(head []byte) string {
	if len(head) < 16 || !bytes.Equal(head[4:8], []byte("ftyp")) {
		return ""
	}
	size := int(binary.BigEndian.Uint32(head[0:4]))
	if size < 16 || size > len(head) {
		size = len(head)
	}
	size -= size % 4
	brands := [][]byte{head[8:12]} // major brand
	for i := 16; i+4 <= size; i += 4 {
		brands = append(brands, head[i:i+4]) // compatible brands
	}
	heif := false
	for _, b := range brands {
		switch string(b) {
		case "avif", "avis":
			return FormatAVIF
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1":
			heif = true
		}
	}
	if heif {
		return FormatHEIC
	}
	return ""
}

// isSVG accepts text (optionally after a UTF-8 BOM, whitespace, an XML
// declaration, comments or a doctype) whose first element is <svg.
func isSVG(head []byte) bool {
	b := bytes.TrimPrefix(head, []byte("\xEF\xBB\xBF"))
	b = bytes.TrimLeft(b, " \t\r\n")
	if !bytes.HasPrefix(b, []byte("<")) {
		return false
	}
	if bytes.HasPrefix(b, []byte("<svg")) {
		return true
	}
	if bytes.HasPrefix(b, []byte("<?xml")) || bytes.HasPrefix(b, []byte("<!")) {
		return bytes.Contains(b, []byte("<svg"))
	}
	return false
}
