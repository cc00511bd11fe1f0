package imageprep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/draw"

	"github.com/gen2brain/avif"
	"github.com/gen2brain/heic"

	"github.com/llamapipe/llamapipe/jobs"
)

// heifInfo is what the ISO base media ("HEIF") header of an AVIF or HEIC
// file says about its primary image, read without any decoder.
type heifInfo struct {
	// Width and Height are the primary item's stored size (its ispe
	// property), before rotation.
	Width, Height int
	// MaxPixels is the largest pixel count any item declares (tiles,
	// alpha planes and thumbnails included): the budget check uses it, so
	// a bomb cannot hide in an auxiliary item.
	MaxPixels int64
	// Orientation is the EXIF orientation (1..8) equivalent to the primary
	// item's irot and imir properties, in their order; 1 without them.
	Orientation int
	// Sequence reports an image sequence brand (avis, msf1, hevc…): an
	// animation, of which the first frame is used.
	Sequence bool
	// transforms are the offsets in the file of the 4CCs of the irot and
	// imir properties; pitm is the offset of the primary item ID (16
	// bits), alpha the ID of the primary's alpha item (0: none) and auxl
	// the offset of the 4CC of the reference that makes it one.
	transforms   []int
	pitm, auxl   int
	alpha        uint32
	alphaPrimary bool
}

// errNoHeader: the file has no readable meta box (not one we can guard).
var errNoHeader = errors.New("no readable HEIF meta box")

// readHEIF parses the ftyp and meta boxes of data. Boxes are walked with
// their sizes checked against their parents, so a damaged header gives an
// error, never a read past the end.
func readHEIF(data []byte) (heifInfo, error) {
	info := heifInfo{Orientation: 1}
	var meta []byte
	for b := range boxesOf(data) {
		switch b.typ {
		case "ftyp":
			for i := 0; i+4 <= len(b.body); i += 4 {
				if i == 4 { // minor version
					continue
				}
				switch string(b.body[i : i+4]) {
				case "avis", "msf1", "hevc", "hevx", "hevs", "hevm":
					info.Sequence = true
				}
			}
		case "meta":
			if len(b.body) >= 4 {
				meta = b.body[4:] // a full box: version and flags first
			}
		}
	}
	if meta == nil {
		return info, errNoHeader
	}
	var primary uint32
	var ipco, ipma, iref []byte
	for b := range boxesOf(meta) {
		switch b.typ {
		case "pitm":
			if len(b.body) >= 6 && b.body[0] == 0 {
				primary = uint32(binary.BigEndian.Uint16(b.body[4:]))
				info.pitm = offsetIn(data, b.body[4:])
			} else if len(b.body) >= 8 {
				primary = binary.BigEndian.Uint32(b.body[4:])
			}
		case "iref":
			iref = b.body
		case "iprp":
			for c := range boxesOf(b.body) {
				switch c.typ {
				case "ipco":
					ipco = c.body
				case "ipma":
					ipma = c.body
				}
			}
		}
	}
	var props []box
	for p := range boxesOf(ipco) {
		props = append(props, p)
		if p.typ == "irot" || p.typ == "imir" {
			info.transforms = append(info.transforms, offsetIn(data, p.body)-4)
		}
		if p.typ == "ispe" && len(p.body) >= 12 {
			w, h := binary.BigEndian.Uint32(p.body[4:]), binary.BigEndian.Uint32(p.body[8:])
			info.MaxPixels = max(info.MaxPixels, int64(w)*int64(h))
		}
	}
	m := identity
	for _, idx := range associations(ipma, primary) {
		if idx < 1 || idx > len(props) {
			continue
		}
		p := props[idx-1]
		switch {
		case p.typ == "ispe" && len(p.body) >= 12:
			info.Width = int(binary.BigEndian.Uint32(p.body[4:]))
			info.Height = int(binary.BigEndian.Uint32(p.body[8:]))
		case p.typ == "irot" && len(p.body) >= 1:
			for range p.body[0] & 3 { // anticlockwise quarter turns
				m = m.then(rotCCW)
			}
		case p.typ == "imir" && len(p.body) >= 1:
			if p.body[0]&1 == 0 {
				m = m.then(flipV) // mode 0: top to bottom
			} else {
				m = m.then(flipH) // mode 1: left to right
			}
		}
	}
	if info.Width == 0 || info.Height == 0 {
		return info, fmt.Errorf("%w: the primary item declares no size", errNoHeader)
	}
	info.Orientation = m.exif()
	info.alpha, info.auxl = alphaOf(data, iref, primary, props, ipma)
	return info, nil
}

// alphaOf finds the alpha item of primary: an auxl reference to it from
// an item whose auxC names alpha. It returns the item's ID and the offset
// of the reference's 4CC in data.
func alphaOf(data, iref []byte, primary uint32, props []box, ipma []byte) (uint32, int) {
	if len(iref) < 4 {
		return 0, 0
	}
	wide := iref[0] == 1
	for r := range boxesOf(iref[4:]) {
		if r.typ != "auxl" {
			continue
		}
		b, n := r.body, 2
		if wide {
			n = 4
		}
		if len(b) < n+2+n {
			continue
		}
		from := uint32(binary.BigEndian.Uint16(b))
		if wide {
			from = binary.BigEndian.Uint32(b)
		}
		count := int(binary.BigEndian.Uint16(b[n:]))
		for i := range count {
			o := n + 2 + i*n
			if o+n > len(b) {
				break
			}
			to := uint32(binary.BigEndian.Uint16(b[o:]))
			if wide {
				to = binary.BigEndian.Uint32(b[o:])
			}
			if to != primary {
				continue
			}
			for _, idx := range associations(ipma, from) {
				if idx >= 1 && idx <= len(props) && props[idx-1].typ == "auxC" &&
					bytes.Contains(props[idx-1].body, []byte("alpha")) || // urn:mpeg:mpegB:cicp:systems:auxiliary:alpha
					idx >= 1 && idx <= len(props) && props[idx-1].typ == "auxC" &&
						bytes.Contains(props[idx-1].body, []byte("urn:mpeg:hevc:2015:auxid:1")) {
					return from, offsetIn(data, r.body) - 4
				}
			}
		}
	}
	return 0, 0
}

// offsetIn is the offset of sub, a slice of data, within data.
func offsetIn(data, sub []byte) int { return cap(data) - cap(sub) }

// associations returns the property indices (1-based) ipma lists for item.
func associations(ipma []byte, item uint32) []int {
	if len(ipma) < 8 {
		return nil
	}
	version, flags := ipma[0], ipma[3]
	n := binary.BigEndian.Uint32(ipma[4:])
	p := ipma[8:]
	for range n {
		var id uint32
		if version < 1 {
			if len(p) < 2 {
				return nil
			}
			id, p = uint32(binary.BigEndian.Uint16(p)), p[2:]
		} else {
			if len(p) < 4 {
				return nil
			}
			id, p = binary.BigEndian.Uint32(p), p[4:]
		}
		if len(p) < 1 {
			return nil
		}
		count := int(p[0])
		p = p[1:]
		var idx []int
		for range count {
			if flags&1 == 1 {
				if len(p) < 2 {
					return nil
				}
				idx, p = append(idx, int(binary.BigEndian.Uint16(p)&0x7FFF)), p[2:]
			} else {
				if len(p) < 1 {
					return nil
				}
				idx, p = append(idx, int(p[0]&0x7F)), p[1:]
			}
		}
		if id == item {
			return idx
		}
	}
	return nil
}

type box struct {
	typ  string
	body []byte
}

// boxesOf yields the boxes laid out in b; it stops at the first size that
// does not fit.
func boxesOf(b []byte) func(yield func(box) bool) {
	return func(yield func(box) bool) {
		for len(b) >= 8 {
			size, hdr := uint64(binary.BigEndian.Uint32(b)), uint64(8)
			switch size {
			case 0:
				size = uint64(len(b))
			case 1:
				if len(b) < 16 {
					return
				}
				size, hdr = binary.BigEndian.Uint64(b[8:]), 16
			}
			if size < hdr || size > uint64(len(b)) {
				return
			}
			if !yield(box{typ: string(b[4:8]), body: b[hdr:size]}) {
				return
			}
			b = b[size:]
		}
	}
}

// orientMatrix is a 2x2 integer matrix acting on (x, y), y pointing down:
// the eight rotations and mirrorings of the EXIF orientations.
type orientMatrix [4]int

var (
	identity = orientMatrix{1, 0, 0, 1}
	rotCCW   = orientMatrix{0, 1, -1, 0} // (x, y) → (y, -x)
	flipH    = orientMatrix{-1, 0, 0, 1}
	flipV    = orientMatrix{1, 0, 0, -1}
	// exifMatrices[o-1] is what EXIF orientation o does to the stored
	// picture (as orientImage applies it).
	exifMatrices = [8]orientMatrix{
		identity, flipH, {-1, 0, 0, -1}, flipV,
		{0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, -1, 0}, rotCCW,
	}
)

// then returns m followed by n.
func (m orientMatrix) then(n orientMatrix) orientMatrix {
	return orientMatrix{
		n[0]*m[0] + n[1]*m[2], n[0]*m[1] + n[1]*m[3],
		n[2]*m[0] + n[3]*m[2], n[2]*m[1] + n[3]*m[3],
	}
}

func (m orientMatrix) exif() int {
	for i, e := range exifMatrices {
		if e == m {
			return i + 1
		}
	}
	return 1
}

// heifConfig reads an AVIF or HEIC header for Prepare: the stored size
// (refused above the limit by the caller before any decoder runs).
func heifConfig(format jobs.FileType, data []byte) (image.Config, heifInfo, error) {
	info, err := readHEIF(data)
	if err != nil {
		return image.Config{}, info, fmt.Errorf("%w: %s read header: %v", ErrCorrupt, format, err)
	}
	return image.Config{Width: info.Width, Height: info.Height}, info, nil
}

// minHEICWidth: gen2brain/heic v0.4.5 assumes 16-byte aligned plane
// strides, but libheif gives a plane at least 64 bytes a row; a 4:2:0
// HEIC under 97 pixels wide (chroma under 49) comes out with wrong
// colours (measured over widths 64..3024 in steps).
const minHEICWidth = 97

// heifSlots bounds the AVIF/HEIC decodes running at once in the process:
// each takes its own WebAssembly instance whose memory grows to several
// times the picture (about 1.1 GB allocated for a 16 MP AVIF, measured),
// so a worker with --concurrency 32 must not run 32 of them together.
var heifSlots = make(chan struct{}, 2)

// decodeHEIF decodes the primary image (the first frame of a sequence)
// with gen2brain's libavif / libheif builds in WebAssembly (wazero), as
// stored: Prepare applies irot/imir. libavif returns the stored pixels
// with their alpha. libheif (gen2brain/heic v0.4.5) would apply irot
// itself but fails on it (out-of-bounds memory access in the module), and
// drops the alpha plane; so HEIC is decoded from a copy whose irot/imir
// properties are renamed "free" (the same size: no offset moves), and its
// alpha item is decoded on its own from a second copy that makes it the
// primary item, and joined.
func decodeHEIF(format jobs.FileType, data []byte, info heifInfo) (image.Image, error) {
	fail := func(err error) error { return fmt.Errorf("%w: %s decode: %v", ErrCorrupt, format, err) }
	switch format {
	case jobs.FileAVIF:
		heifSlots <- struct{}{}
		img, err := avif.Decode(bytes.NewReader(data))
		<-heifSlots
		if err != nil {
			return nil, fail(err)
		}
		return img, nil
	case jobs.FileHEIC:
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, format)
	}
	if info.Width < minHEICWidth {
		return nil, fmt.Errorf("%w: HEIC images narrower than %d pixels (this one is %d) are not decoded correctly by our decoder",
			ErrUnsupported, minHEICWidth, info.Width)
	}
	heifSlots <- struct{}{}
	defer func() { <-heifSlots }()
	stored := bytes.Clone(data)
	for _, o := range info.transforms {
		copy(stored[o:], "free")
	}
	img, err := heic.Decode(bytes.NewReader(stored))
	if err != nil {
		return nil, fail(err)
	}
	if info.alpha == 0 || info.pitm == 0 || info.alpha > 0xFFFF {
		return img, nil
	}
	binary.BigEndian.PutUint16(stored[info.pitm:], uint16(info.alpha))
	copy(stored[info.auxl:], "free")
	mask, err := heic.Decode(bytes.NewReader(stored))
	if err != nil {
		return nil, fmt.Errorf("%w (alpha plane)", fail(err))
	}
	if mask.Bounds() != img.Bounds() {
		return img, nil // an alpha plane of another size: left out
	}
	out := image.NewNRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	b := out.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			a, _, _, _ := mask.At(x, y).RGBA() // grey: R = G = B = Y
			out.Pix[out.PixOffset(x, y)+3] = uint8(a >> 8)
		}
	}
	return out, nil
}
