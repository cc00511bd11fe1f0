package imageprep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/llamapipe/llamapipe/jobs"
)

var errNoEXIF = errors.New("no EXIF orientation")

// parseOrientation reads the Orientation tag (0x0112) from IFD0 of a TIFF
// structure: the payload of a JPEG APP1 "Exif" segment after its 6-byte
// prefix, a PNG eXIf chunk, a WebP EXIF chunk, or a whole TIFF file. It
// returns 1..8; a missing tag or a value outside 1..8 (0 included) gives 1
// with a nil error. A structure that cannot be followed gives an error, and
// callers then also treat the image as upright.
func parseOrientation(tiff []byte) (int, error) {
	if len(tiff) < 8 {
		return 1, fmt.Errorf("exif: %d bytes is too short for a TIFF header", len(tiff))
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1, errors.New("exif: bad byte-order mark")
	}
	if bo.Uint16(tiff[2:4]) != 42 {
		return 1, errors.New("exif: bad TIFF magic")
	}
	off := uint64(bo.Uint32(tiff[4:8]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 1, fmt.Errorf("exif: IFD0 offset %d outside the %d-byte block", off, len(tiff))
	}
	n := uint64(bo.Uint16(tiff[off : off+2]))
	entries := off + 2
	if entries+n*12 > uint64(len(tiff)) {
		return 1, fmt.Errorf("exif: IFD0 with %d entries runs past the %d-byte block", n, len(tiff))
	}
	for i := uint64(0); i < n; i++ {
		e := tiff[entries+i*12 : entries+i*12+12]
		if bo.Uint16(e[0:2]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(e[2:4]), bo.Uint32(e[4:8])
		if count < 1 {
			return 1, errors.New("exif: Orientation tag with no value")
		}
		var v uint32
		switch typ {
		case 3: // SHORT, the type the standard prescribes
			v = uint32(bo.Uint16(e[8:10]))
		case 4: // LONG, seen from some writers
			v = bo.Uint32(e[8:12])
		default:
			return 1, fmt.Errorf("exif: Orientation tag of type %d", typ)
		}
		if v < 1 || v > 8 {
			return 1, nil
		}
		return int(v), nil
	}
	return 1, nil
}

// exifPrefix starts a JPEG APP1 EXIF payload; some writers wrongly put it in
// PNG eXIf and WebP EXIF chunks too, so it is stripped there as well.
var exifPrefix = []byte("Exif\x00\x00")

// jpegEXIF returns the TIFF block of the first APP1 Exif segment of a JPEG,
// looking only at the marker segments before the first scan.
func jpegEXIF(data []byte) ([]byte, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, errors.New("exif: not a JPEG")
	}
	i := 2
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return nil, fmt.Errorf("exif: expected a JPEG marker at offset %d", i)
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		i += 2
		switch {
		case marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7):
			continue // no length
		case marker == 0xDA || marker == 0xD9:
			return nil, errNoEXIF // start of scan / end of image
		}
		length := int(binary.BigEndian.Uint16(data[i : i+2]))
		if length < 2 || i+length > len(data) {
			return nil, fmt.Errorf("exif: JPEG segment 0x%02X length %d runs past the data", marker, length)
		}
		seg := data[i+2 : i+length]
		if marker == 0xE1 && bytes.HasPrefix(seg, exifPrefix) {
			return seg[len(exifPrefix):], nil
		}
		i += length
	}
	return nil, errNoEXIF
}

// pngEXIF returns the payload of a PNG eXIf chunk.
func pngEXIF(data []byte) ([]byte, error) {
	const sig = 8
	if len(data) < sig {
		return nil, errors.New("exif: not a PNG")
	}
	i := sig
	for i+8 <= len(data) {
		n := uint64(binary.BigEndian.Uint32(data[i : i+4]))
		typ := string(data[i+4 : i+8])
		start := uint64(i + 8)
		if start+n+4 > uint64(len(data)) {
			return nil, fmt.Errorf("exif: PNG chunk %q runs past the data", typ)
		}
		switch typ {
		case "eXIf":
			return bytes.TrimPrefix(data[start:start+n], exifPrefix), nil
		case "IEND":
			return nil, errNoEXIF
		}
		i = int(start + n + 4)
	}
	return nil, errNoEXIF
}

// webpEXIF returns the payload of a WebP (RIFF) EXIF chunk.
func webpEXIF(data []byte) ([]byte, error) {
	if len(data) < 12 {
		return nil, errors.New("exif: not a WebP")
	}
	i := 12
	for i+8 <= len(data) {
		id := string(data[i : i+4])
		n := uint64(binary.LittleEndian.Uint32(data[i+4 : i+8]))
		start := uint64(i + 8)
		if start+n > uint64(len(data)) {
			return nil, fmt.Errorf("exif: WebP chunk %q runs past the data", id)
		}
		if id == "EXIF" {
			return bytes.TrimPrefix(data[start:start+n], exifPrefix), nil
		}
		i = int(start + n + n&1) // chunks are padded to an even size
	}
	return nil, errNoEXIF
}

// orientationOf returns the EXIF orientation (1..8) of an image of the given
// format, and 1 when there is none or it cannot be read: a broken EXIF block
// must not stop an otherwise decodable picture.
func orientationOf(format jobs.FileType, data []byte) int {
	var block []byte
	var err error
	switch format {
	case jobs.FileJPEG:
		block, err = jpegEXIF(data)
	case jobs.FilePNG:
		block, err = pngEXIF(data)
	case jobs.FileWebP:
		block, err = webpEXIF(data)
	case jobs.FileTIFF:
		block = data
	default:
		return 1
	}
	if err != nil {
		return 1
	}
	o, err := parseOrientation(block)
	if err != nil {
		return 1
	}
	return o
}
