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

	"github.com/llamapipe/llamapipe/jobs"
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
	byExt := map[string]jobs.FileType{
		".pdf": jobs.FilePDF, ".jpg": jobs.FileJPEG, ".jpeg": jobs.FileJPEG, ".png": jobs.FilePNG, ".gif": jobs.FileGIF, ".webp": jobs.FileWebP,
		".bmp": jobs.FileBMP, ".tiff": jobs.FileTIFF, ".tif": jobs.FileTIFF, ".heic": jobs.FileHEIC, ".avif": jobs.FileAVIF,
		".md": jobs.FileMarkdown, ".py": jobs.FileTXT, ".json": jobs.FileTXT,
	}
	// Files whose content disagrees with their name.
	override := map[string]jobs.FileType{
		"images/broken/text_named.jpg":           jobs.FileTXT,
		"images/broken/empty.jpg":                jobs.FileUnknown,
		"images/formats/seeding_really_jpeg.png": jobs.FileJPEG,
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
		head := readHead(t, p)
		if got := Sniff(d.Name(), head); got != want {
			t.Errorf("Sniff(%s) = %q, want %q", rel, got, want)
		}
		if want.Kind() == jobs.KindImage {
			if got := Sniff("", head); got != want {
				t.Errorf("Sniff(%s) without its name = %q, want %q", rel, got, want)
			}
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
		if got := Sniff(name, jpeg); got != jobs.FileJPEG {
			t.Errorf("JPEG named %s: got %q", name, got)
		}
		if got := Sniff(name, pdf); got != jobs.FilePDF {
			t.Errorf("PDF named %s: got %q", name, got)
		}
	}
	for _, name := range []string{"a.jpg", "a.png", "a.pdf", "a.heic"} {
		if got := Sniff(name, text); got != jobs.FileTXT || got.Kind() != jobs.KindDocument {
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
		want jobs.FileType
	}{
		{"empty", "a.txt", nil, jobs.FileUnknown},
		{"pdf", "x", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), jobs.FilePDF},
		{"pdf after junk", "x.bin", append(bytes.Repeat([]byte{0}, 500), "%PDF-1.4\n"...), jobs.FilePDF},
		{"pdf marker too late", "x.bin", append(bytes.Repeat([]byte{0}, 1100), "%PDF-1.4\n"...), jobs.FileUnknown},
		{"text mentioning pdf marker", "notes.txt", []byte("The header is %PDF-x and then more text."), jobs.FileTXT},
		{"jpeg", "a.png", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F'}, jobs.FileJPEG},
		{"png", "a.jpg", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), jobs.FilePNG},
		{"gif87", "a", []byte("GIF87a\x01\x00\x01\x00"), jobs.FileGIF},
		{"gif89", "a", []byte("GIF89a\x01\x00\x01\x00"), jobs.FileGIF},
		{"gif bad version", "a.gif", []byte("GIF90a\x01\x00\x01\x00"), jobs.FileUnknown},
		{"webp", "a", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), jobs.FileWebP},
		{"riff wave", "a.webp", []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"), jobs.FileUnknown},
		{"bmp", "a", bmp(54, 40), jobs.FileBMP},
		{"bmp v5", "a", bmp(138, 124), jobs.FileBMP},
		{"BM text", "a.bmp", []byte("BMW sales report for the third quarter of the year"), jobs.FileTXT},
		{"BM bad offset", "a.bmp", bmp(20, 40), jobs.FileUnknown},
		{"tiff le", "a", []byte("II*\x00\x08\x00\x00\x00"), jobs.FileTIFF},
		{"tiff be", "a", []byte("MM\x00*\x00\x00\x00\x08"), jobs.FileTIFF},
		{"heic", "a", ftyp("heic", "mif1", "heic"), jobs.FileHEIC},
		{"heix", "a", ftyp("heix", "mif1"), jobs.FileHEIC},
		{"mif1 heic", "a", ftyp("mif1", "mif1", "heic"), jobs.FileHEIC},
		{"mif1 avif", "a", ftyp("mif1", "mif1", "avif", "miaf"), jobs.FileAVIF},
		{"avif", "a.heic", ftyp("avif", "mif1", "miaf"), jobs.FileAVIF},
		{"mp4", "a.heic", ftyp("isom", "isom", "mp41"), jobs.FileUnknown},
		{"docx by entry", "a.zip", zipHead(t, "[Content_Types].xml", "_rels/.rels", "word/document.xml"), jobs.FileDOCX},
		{"docx by ext", "Contract.DOCX", zipHead(t, "[Content_Types].xml", "_rels/.rels", "docProps/app.xml"), jobs.FileDOCX},
		{"xlsx named docx", "a.docx", zipHead(t, "[Content_Types].xml", "xl/workbook.xml"), jobs.FileXLSX},
		{"pptx", "deck.zip", zipHead(t, "[Content_Types].xml", "ppt/presentation.xml"), jobs.FilePPTX},
		{"rtf", "a.txt", []byte(`{\rtf1\ansi hello}`), jobs.FileRTF},
		{"zip", "a.zip", zipHead(t, "a.txt", "b.txt"), jobs.FileZip},
		{"empty zip", "a.docx", []byte("PK\x05\x06" + strings.Repeat("\x00", 18)), jobs.FileDOCX},
		{"svg", "a", []byte("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"), jobs.FileSVG},
		{"svg xml decl", "a.txt", []byte("<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\">\n<svg width=\"1\"/>"), jobs.FileSVG},
		{"xml not svg", "a.svg", []byte("<?xml version=\"1.0\"?><note><svg/></note>"), jobs.FileTXT},
		{"html doctype", "a.txt", []byte("\xef\xbb\xbf  \n<!DOCTYPE html>\n<p>hi"), jobs.FileHTML},
		{"html upper", "a", []byte("<HTML><BODY>x</BODY></HTML>"), jobs.FileHTML},
		{"html head", "a", []byte("<!-- c --><head><title>t</title></head>"), jobs.FileHTML},
		{"html body", "a", []byte("\r\n\t<body class=x>text</body>"), jobs.FileHTML},
		{"xhtml", "a", []byte("<?xml version=\"1.0\"?><!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"x\"><html xmlns=\"x\"><body><svg/></body></html>"), jobs.FileHTML},
		{"html fragment named html", "a.htm", []byte("<p>Only a fragment</p>"), jobs.FileHTML},
		{"html fragment named txt", "a.txt", []byte("<p>Only a fragment</p>"), jobs.FileTXT},
		{"prose named html", "a.html", []byte("Just prose."), jobs.FileTXT},
		{"utf8 text", "a", []byte("Hello, wörld — naïve café 日本語\n"), jobs.FileTXT},
		{"markdown", "README.md", []byte("# Title\n\nSome *text*.\n"), jobs.FileMarkdown},
		{"markdown long ext", "x.MARKDOWN", []byte("# Title\n"), jobs.FileMarkdown},
		{"markdown content but txt name", "x.txt", []byte("# Title\n"), jobs.FileTXT},
		{"text cut mid rune", "a.txt", cut("日本"), jobs.FileTXT},
		{"utf16le", "a.txt", utf16Bytes("Hello world\r\nSecond line", false), jobs.FileTXT},
		{"utf16be html", "a", utf16Bytes("<!doctype html><title>x</title>", true), jobs.FileHTML},
		{"utf16 binary", "a", append([]byte{0xFF, 0xFE}, 0, 0, 1, 0, 2, 0, 3, 0), jobs.FileUnknown},
		{"latin1", "a.txt", []byte("Caf\xe9 cr\xe8me br\xfbl\xe9e, d\xe9j\xe0 vu.\n"), jobs.FileTXT},
		{"nul", "a.txt", []byte("text\x00text"), jobs.FileUnknown},
		{"controls", "a.txt", []byte("\x01\x02\x03\x04\x05\x06abc"), jobs.FileUnknown},
		{"utf16 without bom", "a.txt", []byte("H\x00e\x00l\x00l\x00o\x00"), jobs.FileUnknown},
		{"gzip", "a.txt", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00"), jobs.FileUnknown},
		{"elf", "a.txt", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00"), jobs.FileUnknown},
		{"ole2 doc", "a.doc", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"), jobs.FileDOC},
		{"ole2 msg", "Mail.MSG", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"), jobs.FileMSG},
		{"ole2 unnamed", "blob", []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"), jobs.FileOLE},
		{"email", "x.txt", []byte("Return-Path: <a@b>\r\nFrom: A <a@b>\r\nSubject: hi\r\n\r\nbody"), jobs.FileEML},
		{"email by name", "x.eml", []byte("X-Mailer: z\nTo: b@c\n\nbody"), jobs.FileEML},
		{"text with a colon", "notes.txt", []byte("Note: this is text\nFrom: the team\n"), jobs.FileTXT},
		{"bigtiff le", "a", []byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00"), jobs.FileTIFF},
		{"hevc sequence", "a", ftyp("msf1", "msf1", "hevc"), jobs.FileHEIC},
		{"heic major with avif compat", "a", ftyp("heic", "mif1", "avif"), jobs.FileHEIC},
		{"avis", "a", ftyp("avis", "msf1", "miaf"), jobs.FileAVIF},
		// Without a name, as the worker's image preparation sniffs (these
		// came from worker/imageprep's own sniffer, folded in here).
		{"noname svg", "", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), jobs.FileSVG},
		{"noname svg with prolog", "", []byte("\xEF\xBB\xBF\n<?xml version=\"1.0\"?>\n<!-- x -->\n<svg>"), jobs.FileSVG},
		{"noname html is not svg", "", []byte("<html><body><svg></svg>"), jobs.FileHTML},
		{"noname xml without svg", "", []byte(`<?xml version="1.0"?><note/>`), jobs.FileTXT},
		{"noname heic brand", "", ftyp("heic", "mif1", "heic"), jobs.FileHEIC},
		{"noname mif1 with avif", "", ftyp("mif1", "mif1", "avif"), jobs.FileAVIF},
		{"noname avif brand", "", ftyp("avif", "mif1"), jobs.FileAVIF},
		{"noname mp4", "", ftyp("isom", "iso2", "mp41"), jobs.FileUnknown},
		{"noname BM text", "", []byte("BMW sales figures for the third quarter"), jobs.FileTXT},
		{"noname bmp", "", bmp(54, 40), jobs.FileBMP},
		{"noname BM too short", "", []byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00"), jobs.FileUnknown},
		{"noname tiff be", "", []byte("MM\x00*\x00\x00\x00\x08"), jobs.FileTIFF},
		{"noname riff wave", "", []byte("RIFF\x10\x00\x00\x00WAVEfmt "), jobs.FileUnknown},
		{"noname jpeg soi only", "", []byte{0xFF, 0xD8}, jobs.FileUnknown},
		{"noname empty", "", nil, jobs.FileUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sniff(tc.file, tc.head); got != tc.want {
				t.Errorf("Sniff(%q, %q) = %q, want %q", tc.file, tc.head[:min(len(tc.head), 64)], got, tc.want)
			}
		})
	}
}

func TestLongHeadIsTruncated(t *testing.T) {
	// Bytes past HeadSize must not change the answer.
	head := append(bytes.Repeat([]byte("plain text "), HeadSize), 0)
	if got := Sniff("a.txt", head); got != jobs.FileTXT {
		t.Fatalf("got %q, want txt (NUL after HeadSize must be ignored)", got)
	}
}

var allTypes = map[jobs.FileType]bool{jobs.FilePDF: true, jobs.FileDOCX: true, jobs.FileTXT: true, jobs.FileMarkdown: true, jobs.FileHTML: true, jobs.FileJPEG: true, jobs.FilePNG: true,
	jobs.FileGIF: true, jobs.FileWebP: true, jobs.FileBMP: true, jobs.FileTIFF: true, jobs.FileHEIC: true, jobs.FileAVIF: true, jobs.FileSVG: true, jobs.FileZip: true, jobs.FileUnknown: true}

// addCorpusHeads seeds f with the first bytes of the image corpus files,
// unnamed (as the worker's image preparation sniffs) and named.
func addCorpusHeads(f *testing.F, maxLen int) {
	root := jobstest.CorpusDir(f, "images")
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
			b = b[:min(len(b), maxLen)]
			f.Add("", b)
			f.Add(e.Name(), b)
		}
	}
}

// FuzzSniff checks that any name and head give one of the known types,
// deterministically, from at most HeadSize bytes, and that an image type
// never depends on the name.
func FuzzSniff(f *testing.F) {
	addCorpusHeads(f, 600)
	f.Add("", []byte("<svg/>"))
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
		if len(head) == 0 && got != jobs.FileUnknown {
			t.Fatalf("empty head gave %q", got)
		}
		if len(head) > HeadSize && Sniff(name, head[:HeadSize]) != got {
			t.Fatalf("Sniff looked past %d bytes", HeadSize)
		}
		if got.Kind() == jobs.KindImage {
			if unnamed := Sniff("", head); unnamed != got {
				t.Fatalf("image type depends on the name: %q named %q, %q unnamed", got, name, unnamed)
			}
		}
	})
}
