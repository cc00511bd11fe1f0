package extract

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	uni "unicode"
	"unicode/utf8"

	"github.com/saintfish/chardet"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Permanent failures: the input itself is bad, retrying cannot help.
var (
	// ErrUnsupportedEncoding: the bytes are not text in an encoding this
	// package can identify (binary data, UTF-16 without a byte-order mark,
	// an exotic legacy encoding).
	ErrUnsupportedEncoding = errors.New("unsupported text encoding")
	// ErrTooLarge: a limit in Limits was hit (zip bomb, huge document).
	ErrTooLarge = errors.New("document too large")
	// ErrCorrupt: the container or markup is broken beyond reading.
	ErrCorrupt = errors.New("corrupt document")
)

// detectSample is how many leading bytes the legacy-encoding detector sees.
const detectSample = 64 << 10

// minConfidence is the lowest chardet confidence (1–100) trusted for a
// legacy encoding before falling back to Windows-1252.
const minConfidence = 30

// Text converts a plain-text or Markdown file to normalised UTF-8:
//   - a UTF-8 byte-order mark is stripped; UTF-16 and UTF-32 (LE or BE) with
//     a byte-order mark are converted;
//   - text that is not valid UTF-8 is decoded with the legacy encoding the
//     detector (github.com/saintfish/chardet) is confident about —
//     Windows-125x, ISO-8859-x, KOI8-R, Shift_JIS, EUC-JP, EUC-KR, GB18030,
//     Big5 … — or, failing that, as Windows-1252 when every byte is defined
//     there;
//   - CRLF and lone CR become LF, form feed and vertical tab become LF, and
//     other control characters are dropped.
//
// Binary data (NULs or more than 1% control characters) and text in no
// identifiable encoding fail with ErrUnsupportedEncoding.
func Text(data []byte) (string, error) {
	s, err := decodeText(data)
	if err != nil {
		return "", err
	}
	return normalise(s), nil
}

// decodeText returns data as UTF-8 without normalising it.
func decodeText(data []byte) (string, error) {
	if enc, n, name := bomEncoding(data); enc != nil {
		out, err := enc.NewDecoder().Bytes(data[n:])
		if err != nil {
			return "", fmt.Errorf("%w: decode %s: %v", ErrUnsupportedEncoding, name, err)
		}
		if bad, ok := plausibleText(string(out)); !ok {
			return "", fmt.Errorf("%w: %s byte-order mark but binary content (%s)", ErrUnsupportedEncoding, name, bad)
		}
		return string(out), nil
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if bad, ok := plausible(data); !ok {
		return "", fmt.Errorf("%w: looks like binary data, not text (%s)", ErrUnsupportedEncoding, bad)
	}
	if utf8.Valid(data) {
		if bad, ok := plausibleText(string(data)); !ok {
			return "", fmt.Errorf("%w: looks like binary data, not text (%s)", ErrUnsupportedEncoding, bad)
		}
		return string(data), nil
	}
	s, _, err := decodeLegacy(data, chardet.NewTextDetector())
	return s, err
}

// bomEncoding recognises a UTF-16 or UTF-32 byte-order mark and returns the
// decoder, the BOM length and a name.
func bomEncoding(b []byte) (encoding.Encoding, int, string) {
	switch {
	case bytes.HasPrefix(b, []byte{0x00, 0x00, 0xFE, 0xFF}):
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), 4, "UTF-32BE"
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE, 0x00, 0x00}):
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM), 4, "UTF-32LE"
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), 2, "UTF-16BE"
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), 2, "UTF-16LE"
	}
	return nil, 0, ""
}

// decodeLegacy decodes data that is not valid UTF-8, in this order: the
// detector's candidates with at least minConfidence; Windows-1252 when every
// byte is defined there and most letters are ASCII (Western European text);
// the detector's best weak guess (at least minGuess). It returns the text and
// the encoding's name.
func decodeLegacy(data []byte, det *chardet.Detector) (string, string, error) {
	sample := data[:min(len(data), detectSample)]
	results, _ := det.DetectAll(sample) // an error means no candidate
	// chardet runs its recognisers concurrently and sorts unstably: order
	// ties by name so that the same input always gives the same text.
	slices.SortStableFunc(results, func(a, b chardet.Result) int {
		if c := cmp.Compare(b.Confidence, a.Confidence); c != 0 {
			return c
		}
		return strings.Compare(a.Charset, b.Charset)
	})
	var tried []string
	try := func(r chardet.Result) (string, bool) {
		enc := lookupEncoding(r.Charset)
		if enc == nil {
			return "", false // UTF-8/16/32 (not valid here) or no decoder (IBM42x)
		}
		tried = append(tried, fmt.Sprintf("%s (%d%%)", r.Charset, r.Confidence))
		out, err := enc.NewDecoder().Bytes(data)
		if err != nil || bytes.Contains(out, []byte("\uFFFD")) {
			return "", false
		}
		if _, ok := plausibleText(string(out)); !ok {
			return "", false
		}
		return string(out), true
	}
	for _, r := range results {
		if r.Confidence < minConfidence {
			break
		}
		if s, ok := try(r); ok {
			return s, r.Charset, nil
		}
	}
	if cp1252Defined(data) {
		out, err := charmap.Windows1252.NewDecoder().Bytes(data)
		if err == nil && mostlyASCIILetters(out) {
			return string(out), "windows-1252", nil
		}
		tried = append(tried, "windows-1252")
	}
	for _, r := range results {
		if r.Confidence < minGuess {
			break
		}
		if r.Confidence >= minConfidence {
			continue // already tried
		}
		if s, ok := try(r); ok {
			return s, r.Charset, nil
		}
	}
	if len(tried) == 0 {
		tried = append(tried, "no candidate")
	}
	return "", "", fmt.Errorf("%w: not valid UTF-8 and no legacy encoding fits (tried %s); convert the file to UTF-8",
		ErrUnsupportedEncoding, strings.Join(tried, ", "))
}

// minGuess is the lowest chardet confidence accepted as a last resort.
const minGuess = 10

// mostlyASCIILetters reports whether at least 60% of the letters in UTF-8
// text are ASCII, as in English, French, German, Spanish … text; text in
// another script mis-decoded as Windows-1252 is mostly accented letters.
func mostlyASCIILetters(b []byte) bool {
	var ascii, other int
	for _, r := range string(b) {
		switch {
		case r < 0x80 && ('a' <= r|0x20 && r|0x20 <= 'z'):
			ascii++
		case r >= 0x80 && uni.IsLetter(r):
			other++
		}
	}
	return ascii > 0 && ascii*10 >= (ascii+other)*6
}

// lookupEncoding maps a chardet name to a decoder; nil for Unicode
// encodings (handled elsewhere) and unknown names.
func lookupEncoding(name string) encoding.Encoding {
	if strings.HasPrefix(strings.ToUpper(name), "UTF-") {
		return nil
	}
	if name == "GB-18030" {
		name = "gb18030"
	}
	if e, err := htmlindex.Get(name); err == nil {
		return e
	}
	if e, err := ianaindex.IANA.Encoding(name); err == nil && e != nil {
		return e
	}
	return nil
}

// cp1252Defined reports whether data uses no byte that Windows-1252 leaves
// undefined.
func cp1252Defined(data []byte) bool {
	for _, b := range data {
		switch b {
		case 0x81, 0x8D, 0x8F, 0x90, 0x9D:
			return false
		}
	}
	return true
}

// plausible reports whether text reads as text: no NUL and at most 1%
// other control characters (tab, LF, CR, FF, VT, ESC and the DOS
// end-of-file mark are fine). It works on UTF-8 and on any ASCII-compatible
// encoding, where C0 controls are the same bytes. If not, it also says why.
func plausible(b []byte) (string, bool) {
	var bad, n int
	for _, c := range b {
		if c&0xC0 != 0x80 { // count characters, not continuation bytes
			n++
		}
		switch {
		case c == 0:
			return "contains NUL bytes", false
		case c == '\t', c == '\n', c == '\r', c == '\f', c == '\v', c == 0x1A, c == 0x1B:
		case c < 0x20, c == 0x7F:
			bad++
		}
	}
	if bad*100 > n {
		return fmt.Sprintf("%d of %d characters are control characters", bad, n), false
	}
	return "", true
}

// plausibleText reports whether decoded text reads as text: no NUL and at
// most 1% characters that are neither graphic, white space nor format
// characters (controls, unassigned code points, private use, U+FFFD). A
// wrong decoder (random bytes behind a UTF-16 byte-order mark, a legacy
// encoding that does not fit) produces many of those. If not, it also says
// why.
func plausibleText(s string) (string, bool) {
	var bad, n int
	for _, r := range s {
		n++
		switch {
		case r == 0:
			return "contains NUL characters", false
		case r == '\t', r == '\n', r == '\r', r == '\f', r == '\v', r == 0x1A, r == 0x1B:
		case r == utf8.RuneError, uni.Is(uni.Co, r):
			bad++
		case uni.IsGraphic(r), uni.IsSpace(r), uni.Is(uni.Cf, r):
		default:
			bad++
		}
	}
	if bad*100 > n {
		return fmt.Sprintf("%d of %d characters are control, unassigned or private-use characters", bad, n), false
	}
	return "", true
}

// normalise turns CRLF, CR, FF and VT into LF and drops other control
// characters (C0, DEL, C1) and the byte-order mark.
func normalise(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\r':
			b.WriteByte('\n')
			if i+1 < len(s) && s[i+1] == '\n' {
				size++
			}
		case r == '\f', r == '\v':
			b.WriteByte('\n')
		case r == '\n', r == '\t':
			b.WriteRune(r)
		case r < 0x20, r == 0x7F, r >= 0x80 && r < 0xA0, r == 0xFEFF:
		case r == utf8.RuneError && size == 1:
			b.WriteString("\uFFFD")
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
