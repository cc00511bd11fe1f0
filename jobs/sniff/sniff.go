package sniff

import (
	"bytes"
	"encoding/binary"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/jobs"
)

// HeadSize is how many leading bytes of an object Sniff needs. Passing fewer
// (a short file) is fine; bytes past HeadSize are ignored.
const HeadSize = 4096

// Sniff classifies an object from its name and its first bytes (head, at
// most HeadSize bytes are looked at). Magic numbers always win over the
// extension: a JPEG named .png is JPEG, text named .jpg is text. The name is
// used only to refine: a zip archive named .docx is DOCX, text named .md or
// .markdown is MD, and text named .html/.htm that starts with a tag is HTML.
// An empty head is Unknown. The name may be empty (the worker's image
// preparation passes none): an image type never depends on the name.
func Sniff(name string, head []byte) jobs.FileType {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	if len(head) == 0 {
		return jobs.FileUnknown
	}
	ext := strings.ToLower(path.Ext(name))
	if t := magic(head, ext); t != "" {
		return t
	}
	return textual(head, ext)
}

var (
	sigPNG  = []byte("\x89PNG\r\n\x1a\n")
	sigJPEG = []byte{0xFF, 0xD8, 0xFF}
	sigZip  = []byte("PK\x03\x04")
	sigZipE = []byte("PK\x05\x06") // empty archive
	sigOLE  = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
)

// oleType names an OLE compound file by its extension: Outlook .msg and
// legacy Office files share the container.
func oleType(ext string) jobs.FileType {
	switch ext {
	case ".msg":
		return jobs.FileMSG
	case ".doc", ".dot":
		return jobs.FileDOC
	case ".xls", ".xlt":
		return jobs.FileXLS
	case ".ppt", ".pps", ".pot":
		return jobs.FilePPT
	}
	return jobs.FileOLE
}

// magic recognises binary formats by signature; "" means no signature.
func magic(h []byte, ext string) jobs.FileType {
	switch {
	case isPDF(h):
		return jobs.FilePDF
	case bytes.HasPrefix(h, []byte(`{\rtf`)):
		return jobs.FileRTF
	case bytes.HasPrefix(h, sigJPEG):
		return jobs.FileJPEG
	case bytes.HasPrefix(h, sigPNG):
		return jobs.FilePNG
	case bytes.HasPrefix(h, []byte("GIF87a")), bytes.HasPrefix(h, []byte("GIF89a")):
		return jobs.FileGIF
	case len(h) >= 12 && string(h[:4]) == "RIFF" && string(h[8:12]) == "WEBP":
		return jobs.FileWebP
	case isBMP(h):
		return jobs.FileBMP
	case bytes.HasPrefix(h, []byte("II*\x00")), bytes.HasPrefix(h, []byte("MM\x00*")),
		bytes.HasPrefix(h, []byte("II+\x00")), bytes.HasPrefix(h, []byte("MM\x00+")): // classic and BigTIFF
		return jobs.FileTIFF
	case bytes.HasPrefix(h, sigZip), bytes.HasPrefix(h, sigZipE):
		return zipType(h, ext)
	case bytes.HasPrefix(h, sigOLE):
		return oleType(ext)
	}
	if t, ok := isoBMFF(h); ok {
		return t
	}
	return ""
}

// isPDF accepts "%PDF-" at the start or, as PDF readers do (ISO 32000
// implementation notes), within the first 1024 bytes; when not at offset 0
// it must be followed by a version "d.d" so that text merely mentioning the
// marker is not taken for a PDF.
func isPDF(h []byte) bool {
	const marker = "%PDF-"
	if bytes.HasPrefix(h, []byte(marker)) {
		return true
	}
	w := h[:min(len(h), 1024)]
	i := bytes.Index(w, []byte(marker))
	if i < 0 {
		return false
	}
	v := h[i+len(marker):]
	return len(v) >= 3 && isDigit(v[0]) && v[1] == '.' && isDigit(v[2])
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// isBMP checks "BM" plus a plausible header: a known DIB header size and a
// pixel-data offset that lies after the headers.
func isBMP(h []byte) bool {
	if len(h) < 18 || h[0] != 'B' || h[1] != 'M' {
		return false
	}
	off := binary.LittleEndian.Uint32(h[10:14])
	dib := binary.LittleEndian.Uint32(h[14:18])
	switch dib {
	case 12, 16, 40, 52, 56, 64, 108, 124:
	default:
		return false
	}
	return off >= 14+dib
}

// isoBMFF recognises HEIF (HEIC) and AVIF by their ISO base media "ftyp"
// box. The major brand decides when it is an image brand; otherwise an
// avif/avis compatible brand makes AVIF, and a HEVC image brand
// (heic/heix/heim/heis, hevc/hevx/hevm/hevs for image sequences) or the
// generic HEIF brands mif1/msf1 make HEIC.
func isoBMFF(h []byte) (jobs.FileType, bool) {
	if len(h) < 16 || string(h[4:8]) != "ftyp" {
		return "", false
	}
	size := int(binary.BigEndian.Uint32(h[:4]))
	if size < 16 || size > len(h) {
		size = len(h)
	}
	brands := []string{string(h[8:12])} // major brand
	for i := 16; i+4 <= size; i += 4 {
		brands = append(brands, string(h[i:i+4]))
	}
	has := func(want ...string) bool {
		for _, b := range brands {
			if slices.Contains(want, b) {
				return true
			}
		}
		return false
	}
	heicBrands := []string{"heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"}
	switch {
	case brands[0] == "avif" || brands[0] == "avis":
		return jobs.FileAVIF, true
	case slices.Contains(heicBrands, brands[0]):
		return jobs.FileHEIC, true
	case has("avif", "avis"):
		return jobs.FileAVIF, true
	case has(append(heicBrands, "mif1", "msf1")...):
		return jobs.FileHEIC, true
	}
	return "", false
}

// zipType tells DOCX from other zip archives. The entry names in the local
// file headers visible in the head decide when they are conclusive (a
// "word/" part → DOCX; "xl/" or "ppt/" parts → a different Office format,
// reported as Zip); otherwise the .docx extension decides.
func zipType(h []byte, ext string) jobs.FileType {
	for _, name := range zipNames(h) {
		switch {
		case strings.HasPrefix(name, "word/"):
			return jobs.FileDOCX
		case strings.HasPrefix(name, "xl/"):
			return jobs.FileXLSX
		case strings.HasPrefix(name, "ppt/"):
			return jobs.FilePPTX
		}
	}
	// OpenDocument: the first entry is "mimetype", stored, holding the type.
	if bytes.Contains(h[:min(len(h), 100)], []byte("mimetypeapplication/vnd.oasis.opendocument.text")) {
		return jobs.FileODT
	}
	switch ext {
	case ".xlsx", ".xlsm":
		return jobs.FileXLSX
	case ".pptx":
		return jobs.FilePPTX
	case ".odt":
		return jobs.FileODT
	}
	if bytes.Contains(h, []byte("word/document.xml")) {
		return jobs.FileDOCX
	}
	if ext == ".docx" {
		return jobs.FileDOCX
	}
	return jobs.FileZip
}

// zipNames returns the entry names of the local file headers found in h.
// It looks for every header signature rather than walking entry sizes,
// because writers that stream (data descriptors) leave the sizes at zero.
func zipNames(h []byte) []string {
	var names []string
	for p := 0; ; {
		i := bytes.Index(h[p:], sigZip)
		if i < 0 {
			return names
		}
		p += i
		if p+30 > len(h) {
			return names
		}
		nlen := int(binary.LittleEndian.Uint16(h[p+26:]))
		if p+30+nlen > len(h) {
			return names
		}
		names = append(names, string(h[p+30:p+30+nlen]))
		p += 30 + nlen
	}
}

// textual classifies content without a binary signature: markup (SVG,
// HTML) and plain text; anything else is Unknown.
func textual(h []byte, ext string) jobs.FileType {
	s, ok := decodeText(h)
	if !ok {
		return jobs.FileUnknown
	}
	switch root := rootElement(s); root {
	case "svg":
		return jobs.FileSVG
	case "html", "head", "body":
		return jobs.FileHTML
	}
	if isMail(s, ext) {
		return jobs.FileEML
	}
	switch ext {
	case ".md", ".markdown", ".mdown", ".mkd":
		return jobs.FileMarkdown
	case ".html", ".htm", ".xhtml":
		if strings.HasPrefix(strings.TrimLeftFunc(s, unicode.IsSpace), "<") {
			return jobs.FileHTML
		}
	}
	return jobs.FileTXT
}

// isMail recognises an RFC 5322 message: the text starts with a header
// block (every line a "Name: value" field or a folded continuation) that
// has From (or Received/Return-Path) and Subject, Date, Message-ID or
// MIME-Version; a name ending in .eml needs two header fields of any kind.
func isMail(s, ext string) bool {
	var names []string
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if i == 0 {
				return false
			}
			continue
		}
		c := strings.IndexByte(line, ':')
		if c <= 0 || strings.ContainsAny(line[:c], " \t") {
			return false
		}
		names = append(names, strings.ToLower(line[:c]))
	}
	has := func(want ...string) bool {
		for _, n := range names {
			if slices.Contains(want, n) {
				return true
			}
		}
		return false
	}
	if ext == ".eml" {
		return len(names) >= 2
	}
	return has("from", "received", "return-path") && has("subject", "date", "message-id", "mime-version")
}

// decodeText returns the head as a UTF-8 string if it looks like text:
// UTF-8 (BOM optional) or UTF-16 with a BOM, without NULs and with almost
// no control characters. A multi-byte sequence cut by the end of the head
// is tolerated. Legacy 8-bit text (not valid UTF-8, e.g. Latin-1) counts as
// text when it has no NULs and almost no control bytes; the extractor picks
// its encoding.
func decodeText(h []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(h, []byte{0xEF, 0xBB, 0xBF}):
		h = h[3:]
	case bytes.HasPrefix(h, []byte{0xFF, 0xFE}), bytes.HasPrefix(h, []byte{0xFE, 0xFF}):
		s := decodeUTF16(h[2:], h[0] == 0xFE)
		return s, plausible(s)
	}
	h = trimPartialRune(h)
	if utf8.Valid(h) {
		s := string(h)
		return s, plausible(s)
	}
	// Legacy single- or multi-byte encodings: judge what is left without the
	// non-UTF-8 bytes (C0 controls are the same in all ASCII-compatible
	// encodings).
	s := string(bytes.ToValidUTF8(h, nil))
	return s, plausible(s)
}

func decodeUTF16(b []byte, bigEndian bool) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if bigEndian {
			u = append(u, binary.BigEndian.Uint16(b[i:]))
		} else {
			u = append(u, binary.LittleEndian.Uint16(b[i:]))
		}
	}
	if n := len(u); n > 0 && utf16.IsSurrogate(rune(u[n-1])) {
		u = u[:n-1] // surrogate pair cut by the end of the head
	}
	return string(utf16.Decode(u))
}

// trimPartialRune drops an incomplete (but so far valid) UTF-8 sequence at
// the end of b, as left by cutting a file at HeadSize.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// plausible reports whether s reads as text: no NUL, at most 1% other
// control characters (tab, newlines, form feed, vertical tab, escape and
// the DOS end-of-file mark are fine) and no more than 1% U+FFFD.
func plausible(s string) bool {
	if s == "" {
		return false
	}
	var n, bad int
	for _, r := range s {
		n++
		switch {
		case r == 0:
			return false
		case r == '\t', r == '\n', r == '\r', r == '\f', r == '\v', r == 0x1A, r == 0x1B:
		case r < 0x20, r == 0x7F, r >= 0x80 && r < 0xA0, r == utf8.RuneError:
			bad++
		}
	}
	return bad*100 <= n
}

// rootElement returns the lower-cased name of the first element of s,
// skipping whitespace, the XML declaration, processing instructions,
// comments and the doctype; "html" for an HTML doctype; "" if s does not
// start with markup.
func rootElement(s string) string {
	for {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		switch {
		case hasPrefixFold(s, "<!doctype"):
			rest := strings.TrimLeftFunc(s[len("<!doctype"):], unicode.IsSpace)
			if hasPrefixFold(rest, "html") {
				return "html"
			}
			s = skipPast(s, ">")
		case strings.HasPrefix(s, "<?"):
			s = skipPast(s, "?>")
		case strings.HasPrefix(s, "<!--"):
			s = skipPast(s, "-->")
		case strings.HasPrefix(s, "<"):
			name := s[1:]
			end := strings.IndexFunc(name, func(r rune) bool {
				return !(r == '-' || r == ':' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
			})
			if end < 0 {
				end = len(name)
			}
			name = strings.ToLower(name[:end])
			if i := strings.IndexByte(name, ':'); i >= 0 { // <svg:svg>
				name = name[i+1:]
			}
			return name
		default:
			return ""
		}
		if s == "" {
			return ""
		}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func skipPast(s, sep string) string {
	i := strings.Index(s, sep)
	if i < 0 {
		return ""
	}
	return s[i+len(sep):]
}
