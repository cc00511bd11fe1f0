package sniff

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func readHead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b[:min(len(b), HeadSize)]
}

func TestCorpus(t *testing.T) {
	root := jobstest.CorpusDir(t)
	byExt := map[string]Type{
		".pdf": PDF, ".jpg": JPEG, ".jpeg": JPEG, ".png": PNG, ".gif": GIF, ".webp": WebP,
		".bmp": BMP, ".tiff": TIFF, ".tif": TIFF, ".heic": HEIC, ".avif": AVIF,
		".md": MD, ".py": TXT, ".json": TXT,
	}
	// Files whose content disagrees with their name.
	override := map[string]Type{
		"images/broken/text_named.jpg":           TXT,
		"images/broken/empty.jpg":                Unknown,
		"images/formats/seeding_really_jpeg.png": JPEG,
	}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		want, ok := override[rel]
		if !ok {
			want, ok = byExt[strings.ToLower(filepath.Ext(p))]
		}
		if !ok {
			t.Errorf("%s: no expectation for this extension; extend the test", rel)
			return nil
		}
		n++
		if got := Sniff(d.Name(), readHead(t, p)); got != want {
			t.Errorf("Sniff(%s) = %q, want %q", rel, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel := range override {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("corpus file %s is missing: %v", rel, err)
		}
	}
	if n < 100 {
		t.Fatalf("only %d corpus files checked; is the corpus complete?", n)
	}
}

// TestExtensionDoesNotOverrideMagic renames real files.
func TestExtensionDoesNotOverrideMagic(t *testing.T) {
	root := jobstest.CorpusDir(t)
	jpeg := readHead(t, filepath.Join(root, "images/photos/Wine_by_Jakkub_Mede.jpg"))
	text := readHead(t, filepath.Join(root, "images/broken/text_named.jpg"))
	pdf := readHead(t, filepath.Join(root, "pdfs/text/tracemonkey.pdf"))
	for _, name := range []string{"a.png", "a.pdf", "a.txt", "a.docx", "noext"} {
		if got := Sniff(name, jpeg); got != JPEG {
			t.Errorf("JPEG named %s: got %q", name, got)
		}
		if got := Sniff(name, pdf); got != PDF {
			t.Errorf("PDF named %s: got %q", name, got)
		}
	}
	for _, name := range []string{"a.jpg", "a.png", "a.pdf", "a.heic"} {
		if got := Sniff(name, text); got != TXT || got.Kind() != KindDocument {
			t.Errorf("text named %s: got %q (kind %q)", name, got, got.Kind())
		}
	}
}

func zipHead(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("<x/>"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func utf16Bytes(s string, bigEndian bool) []byte {
	var b []byte
	if bigEndian {
		b = []byte{0xFE, 0xFF}
	} else {
		b = []byte{0xFF, 0xFE}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

func TestSynthetic(t *testing.T) {
	bmp := func(off, dib uint32) []byte {
		b := []byte("BM\x00\x00\x00\x00\x00\x00\x00\x00")
		b = append(b, byte(off), byte(off>>8), 0, 0, byte(dib), byte(dib>>8), 0, 0)
		return append(b, make([]byte, 40)...)
	}
	ftyp := func(major string, compat ...string) []byte {
		body := major + "\x00\x00\x00\x00" + strings.Join(compat, "")
		n := 8 + len(body)
		return append([]byte{0, 0, 0, byte(n)}, []byte("ftyp"+body+"\x00\x00\x00\x08meta")...)
	}
	cut := func(s string) []byte { // a UTF-8 text cut mid-rune at HeadSize
		b := []byte(strings.Repeat(s, HeadSize))[:HeadSize]
		return b
	}
	tests := []struct {
		name string
		file string
		head []byte
		want Type
	}{
		{"empty", "a.txt", nil, Unknown},
		{"pdf", "x", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), PDF},
		{"pdf after junk", "x.bin", append(bytes.Repeat([]byte{0}, 500), "%PDF-1.4\n"...), PDF},
		{"pdf marker too late", "x.bin", append(bytes.Repeat([]byte{0}, 1100), "%PDF-1.4\n"...), Unknown},
		{"text mentioning pdf marker", "notes.txt", []byte("The header is %PDF-x and then more text."), TXT},
		{"jpeg", "a.png", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F'}, JPEG},
		{"png", "a.jpg", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), PNG},
		{"gif87", "a", []byte("GIF87a\x01\x00\x01\x00"), GIF},
		{"gif89", "a", []byte("GIF89a\x01\x00\x01\x00"), GIF},
		{"gif bad version", "a.gif", []byte("GIF90a\x01\x00\x01\x00"), Unknown},
		{"webp", "a", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), WebP},
		{"riff wave", "a.webp", []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"), Unknown},
		{"bmp", "a", bmp(54, 40), BMP},
		{"bmp v5", "a", bmp(138, 124), BMP},
		{"BM text", "a.bmp", []byte("BMW sales report for the third quarter of the year"), TXT},
		{"BM bad offset", "a.bmp", bmp(20, 40), Unknown},
		{"tiff le", "a", []byte("II*\x00\x08\x00\x00\x00"), TIFF},
		{"tiff be", "a", []byte("MM\x00*\x00\x00\x00\x08"), TIFF},
		{"heic", "a", ftyp("heic", "mif1", "heic"), HEIC},
		{"heix", "a", ftyp("heix", "mif1"), HEIC},
		{"mif1 heic", "a", ftyp("mif1", "mif1", "heic"), HEIC},
		{"mif1 avif", "a", ftyp("mif1", "mif1", "avif", "miaf"), AVIF},
		{"avif", "a.heic", ftyp("avif", "mif1", "miaf"), AVIF},
		{"mp4", "a.heic", ftyp("isom", "isom", "mp41"), Unknown},
		{"docx by entry", "a.zip", zipHead(t, "[Content_Types].xml", "_rels/.rels", "word/document.xml"), DOCX},
		{"docx by ext", "Contract.DOCX", zipHead(t, "[Content_Types].xml", "_rels/.rels", "docProps/app.xml"), DOCX},
		{"xlsx named docx", "a.docx", zipHead(t, "[Content_Types].xml", "xl/workbook.xml"), Zip},
		{"zip", "a.zip", zipHead(t, "a.txt", "b.txt"), Zip},
		{"empty zip", "a.docx", []byte("PK\x05\x06" + strings.Repeat("\x00", 18)), DOCX},
		{"svg", "a", []byte("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"), SVG},
		{"svg xml decl", "a.txt", []byte("<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\">\n<svg width=\"1\"/>"), SVG},
		{"xml not svg", "a.svg", []byte("<?xml version=\"1.0\"?><note><svg/></note>"), TXT},
		{"html doctype", "a.txt", []byte("\xef\xbb\xbf  \n<!DOCTYPE html>\n<p>hi"), HTML},
		{"html upper", "a", []byte("<HTML><BODY>x</BODY></HTML>"), HTML},
		{"html head", "a", []byte("<!-- c --><head><title>t</title></head>"), HTML},
		{"html body", "a", []byte("\r\n\t<body class=x>text</body>"), HTML},
		{"xhtml", "a", []byte("<?xml version=\"1.0\"?><!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"x\"><html xmlns=\"x\"><body><svg/></body></html>"), HTML},
		{"html fragment named html", "a.htm", []byte("<p>Only a fragment</p>"), HTML},
		{"html fragment named txt", "a.txt", []byte("<p>Only a fragment</p>"), TXT},
		{"prose named html", "a.html", []byte("Just prose."), TXT},
		{"utf8 text", "a", []byte("Hello, wörld — naïve café 日本語\n"), TXT},
		{"markdown", "README.md", []byte("# Title\n\nSome *text*.\n"), MD},
		{"markdown long ext", "x.MARKDOWN", []byte("# Title\n"), MD},
		{"markdown content but txt name", "x.txt", []byte("# Title\n"), TXT},
		{"text cut mid rune", "a.txt", cut("日本"), TXT},
		{"utf16le", "a.txt", utf16Bytes("Hello world\r\nSecond line", false), TXT},
		{"utf16be html", "a", utf16Bytes("<!doctype html><title>x</title>", true), HTML},
		{"utf16 binary", "a", append([]byte{0xFF, 0xFE}, 0, 0, 1, 0, 2, 0, 3, 0), Unknown},
		{"latin1", "a.txt", []byte("Caf\xe9 cr\xe8me br\xfbl\xe9e, d\xe9j\xe0 vu.\n"), TXT},
		{"nul", "a.txt", []byte("text\x00text"), Unknown},
		{"controls", "a.txt", []byte("\x01\x02\x03\x04\x05\x06abc"), Unknown},
		{"utf16 without bom", "a.txt", []byte("H\x00e\x00l\x00l\x00o\x00"), Unknown},
		{"gzip", "a.txt", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00"), Unknown},
		{"elf", "a.txt", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00"), Unknown},
		{"ole2 doc", "a.doc", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"), Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sniff(tc.file, tc.head); got != tc.want {
				t.Errorf("Sniff(%q, %q) = %q, want %q", tc.file, tc.head[:min(len(tc.head), 64)], got, tc.want)
			}
		})
	}
}

func TestKind(t *testing.T) {
	docs := []Type{PDF, DOCX, TXT, MD, HTML}
	imgs := []Type{JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC, AVIF, SVG}
	for _, d := range docs {
		if d.Kind() != "document" {
			t.Errorf("%s.Kind() = %q", d, d.Kind())
		}
	}
	for _, i := range imgs {
		if i.Kind() != "image" {
			t.Errorf("%s.Kind() = %q", i, i.Kind())
		}
	}
	for _, o := range []Type{Zip, Unknown, "", "exe"} {
		if o.Kind() != "" {
			t.Errorf("%q.Kind() = %q", o, o.Kind())
		}
	}
}

func TestLongHeadIsTruncated(t *testing.T) {
	// Bytes past HeadSize must not change the answer.
	head := append(bytes.Repeat([]byte("plain text "), HeadSize), 0)
	if got := Sniff("a.txt", head); got != TXT {
		t.Fatalf("got %q, want txt (NUL after HeadSize must be ignored)", got)
	}
}

var allTypes = map[Type]bool{PDF: true, DOCX: true, TXT: true, MD: true, HTML: true, JPEG: true, PNG: true,
	GIF: true, WebP: true, BMP: true, TIFF: true, HEIC: true, AVIF: true, SVG: true, Zip: true, Unknown: true}

func FuzzSniff(f *testing.F) {
	f.Add("a.jpg", []byte{0xFF, 0xD8, 0xFF})
	f.Add("a.md", []byte("# hi\n"))
	f.Add("a.docx", []byte("PK\x03\x04\x14\x00\x08\x00"))
	f.Add("a", []byte("\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00avif"))
	f.Add("a", []byte("<?xml version='1.0'?><!-- x --><svg"))
	f.Add("a", []byte("\xfe\xff\x00<\x00h"))
	f.Add("a", []byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, name string, head []byte) {
		got := Sniff(name, head)
		if !allTypes[got] {
			t.Fatalf("unexpected type %q", got)
		}
		if again := Sniff(name, bytes.Clone(head)); again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
		if len(head) == 0 && got != Unknown {
			t.Fatalf("empty head gave %q", got)
		}
	})
}
