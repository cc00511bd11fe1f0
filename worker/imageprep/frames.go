package imageprep

import (
	"encoding/binary"
	"fmt"

	"github.com/llamapipe/llamapipe/jobs"
)

// firstFrame says, for a source of several frames or pages, that only the
// first was used (Result.FirstFrame); "" for a single picture.
func firstFrame(format jobs.FileType, data []byte, heif heifInfo) string {
	switch format {
	case jobs.FileGIF:
		if n := gifFrames(data); n > 1 {
			return fmt.Sprintf("first of %d frames (animated GIF)", n)
		}
	case jobs.FileTIFF:
		if n := tiffPages(data); n > 1 {
			return fmt.Sprintf("first of %d pages (multi-page TIFF)", n)
		}
	case jobs.FileAVIF, jobs.FileHEIC:
		if heif.Sequence {
			return fmt.Sprintf("first frame (%s image sequence)", map[jobs.FileType]string{jobs.FileAVIF: "AVIF", jobs.FileHEIC: "HEIF"}[format])
		}
	}
	return ""
}

// gifFrames counts the image descriptors of a GIF by walking its blocks
// (no pixel is decoded); a truncated file counts the frames it holds.
func gifFrames(d []byte) int {
	if len(d) < 13 {
		return 0
	}
	p := 13
	if d[10]&0x80 != 0 { // global colour table
		p += 3 << (d[10]&7 + 1)
	}
	n := 0
	for p < len(d) {
		switch d[p] {
		case 0x21: // extension: label, then sub-blocks
			p = skipSubBlocks(d, p+2)
		case 0x2C: // image descriptor
			n++
			if p+10 > len(d) {
				return n
			}
			flags := d[p+9]
			p += 10
			if flags&0x80 != 0 { // local colour table
				p += 3 << (flags&7 + 1)
			}
			p = skipSubBlocks(d, p+1) // LZW minimum code size, then data
		default: // the trailer (0x3B), or damage
			return n
		}
	}
	return n
}

func skipSubBlocks(d []byte, p int) int {
	for p < len(d) {
		size := int(d[p])
		p++
		if size == 0 {
			return p
		}
		p += size
	}
	return p
}

// tiffPages counts the IFDs chained from a classic TIFF header (a loop or
// an offset out of the file ends the count).
func tiffPages(d []byte) int {
	if len(d) < 8 {
		return 0
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if d[0] == 'M' {
		bo = binary.BigEndian
	}
	seen := map[uint32]bool{}
	n := 0
	for off := bo.Uint32(d[4:]); off != 0 && !seen[off] && n < 10000; n++ {
		seen[off] = true
		if int64(off)+2 > int64(len(d)) {
			return n
		}
		entries := int64(bo.Uint16(d[off:]))
		next := int64(off) + 2 + 12*entries
		if next+4 > int64(len(d)) {
			return n + 1
		}
		off = bo.Uint32(d[next:])
	}
	return n
}
