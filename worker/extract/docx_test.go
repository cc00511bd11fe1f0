package extract

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
)

const (
	contentTypes = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`
	relsFmt = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="%s"/></Relationships>`
	docHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><w:body>`
	docTail = `<w:sectPr/></w:body></w:document>`
)

// body of a realistic document.xml: split runs, a tab (and a tab stop that
// must not become one), a line break, tracked changes, a table with an
// empty cell and a two-paragraph cell, a text box with a fallback copy.
const docBody = `
<w:p><w:pPr><w:pStyle w:val="Title"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
  <w:r><w:t>Service</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve"> Agreement</w:t></w:r></w:p>
<w:p><w:r><w:t>Clause 1.</w:t></w:r><w:r><w:tab/><w:t>The Supplier &amp; the Client agree.</w:t></w:r>
  <w:del w:id="1" w:author="x"><w:r><w:delText>DELETED words</w:delText></w:r></w:del>
  <w:ins w:id="2" w:author="x"><w:r><w:t xml:space="preserve"> Inserted words.</w:t></w:r></w:ins></w:p>
<w:p/>
<w:p><w:r><w:t>Line one</w:t><w:br/><w:t>line two</w:t></w:r></w:p>
<w:tbl><w:tblPr/><w:tblGrid><w:gridCol/><w:gridCol/><w:gridCol/></w:tblGrid>
  <w:tr><w:tc><w:p><w:r><w:t>Item</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Price</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Notes</w:t></w:r></w:p></w:tc></w:tr>
  <w:tr><w:tc><w:p><w:r><w:t>Hosting</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>€10</w:t></w:r></w:p></w:tc><w:tc><w:p/></w:tc></w:tr>
  <w:tr><w:tc><w:p><w:r><w:t>Support</w:t></w:r></w:p><w:p><w:r><w:t>(24/7)</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>€5</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>monthly</w:t></w:r></w:p></w:tc></w:tr>
</w:tbl>
<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wps:txbx><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></wps:txbx></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>Box text</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r><w:r><w:t>Signed.</w:t></w:r></w:p>
`

const docWant = "Service Agreement\n\n" +
	"Clause 1.\tThe Supplier & the Client agree. Inserted words.\n\n" +
	"Line one\nline two\n\n" +
	"Item | Price | Notes\nHosting | €10 | \nSupport (24/7) | €5 | monthly\n\n" +
	"Box text\n\n" +
	"Signed."

type part struct {
	name string
	body []byte
}

func buildZip(t testing.TB, parts ...part) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		w, err := zw.Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func docx(t testing.TB, mainPath, body string) []byte {
	return buildZip(t,
		part{"[Content_Types].xml", []byte(contentTypes)},
		part{"_rels/.rels", []byte(strings.Replace(relsFmt, "%s", mainPath, 1))},
		part{mainPath, []byte(docHead + body + docTail)},
	)
}

func TestDOCX(t *testing.T) {
	got, err := DOCX(docx(t, "word/document.xml", docBody), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got != docWant {
		t.Fatalf("got:\n%s\n---\nwant:\n%s\n---\n%q", got, docWant, got)
	}
	if strings.Contains(got, "DELETED") {
		t.Error("deleted revision text leaked")
	}
}

func TestDOCXMainPartFromRels(t *testing.T) {
	// Some generators name the main part differently; the package
	// relationships say where it is.
	data := buildZip(t,
		part{"[Content_Types].xml", []byte(contentTypes)},
		part{"_rels/.rels", []byte(strings.Replace(relsFmt, "%s", "/word/document2.xml", 1))},
		part{"word/document2.xml", []byte(docHead + `<w:p><w:r><w:t>Real body</w:t></w:r></w:p>` + docTail)},
		part{"word/document.xml", []byte(docHead + `<w:p><w:r><w:t>Decoy</w:t></w:r></w:p>` + docTail)},
	)
	got, err := DOCX(data, Limits{})
	if err != nil || got != "Real body" {
		t.Fatalf("got %q, %v; want \"Real body\"", got, err)
	}
}

func TestDOCXCorrupt(t *testing.T) {
	tests := map[string][]byte{
		"no document.xml": buildZip(t,
			part{"[Content_Types].xml", []byte(contentTypes)},
			part{"_rels/.rels", []byte(strings.Replace(relsFmt, "%s", "word/document.xml", 1))},
			part{"word/styles.xml", []byte("<w:styles/>")}),
		"not a zip":     []byte("This is plain text, not a DOCX."),
		"empty":         nil,
		"truncated zip": docx(t, "word/document.xml", docBody)[:300],
		"broken xml":    buildZip(t, part{"word/document.xml", []byte(docHead + `<w:p><w:r><w:t>unclosed</w:r></w:p>` + docTail)}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DOCX(data, Limits{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %q, %v; want ErrCorrupt", got, err)
			}
		})
	}
}

// rawEntry adds a deflated entry whose header declares declared bytes.
func rawEntry(t testing.TB, zw *zip.Writer, name string, content io.Reader, declared uint64) {
	t.Helper()
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	h := crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(fw, h), content)
	if err != nil {
		t.Fatal(err)
	}
	fw.Close()
	if declared == 0 {
		declared = uint64(n)
	}
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Deflate, CRC32: h.Sum32(),
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: declared,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
}

// bombReader yields a document.xml whose single paragraph is n bytes of
// spaces and letters: highly compressible.
func bombReader(n int64) io.Reader {
	return io.MultiReader(
		strings.NewReader(docHead+`<w:p><w:r><w:t>`),
		io.LimitReader(repeatReader("zip bomb "), n),
		strings.NewReader(`</w:t></w:r></w:p>`+docTail),
	)
}

type repeatReader string

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

func TestDOCXZipBombDeclaredSize(t *testing.T) {
	// Honest header over the default 100 MiB cap: refused before inflating.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	rawEntry(t, zw, "word/document.xml", bombReader(1<<20), 200<<20)
	zw.Close()
	_, err := DOCX(buf.Bytes(), Limits{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func TestDOCXZipBombLyingHeader(t *testing.T) {
	// The header claims 1 KiB; the data inflates to 4 MiB. Inflation must
	// stop near the claimed size (archive/zip refuses to read past it, the
	// decompression budget is a second guard): a permanent error, never text.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	rawEntry(t, zw, "word/document.xml", bombReader(4<<20), 1024)
	zw.Close()
	got, err := DOCX(buf.Bytes(), Limits{MaxDecompressedBytes: 1 << 20})
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %d bytes of text, %v; want ErrCorrupt or ErrTooLarge", len(got), err)
	}
}

func TestDOCXBudgetReader(t *testing.T) {
	// The budget is shared by all parts read and stops at the first byte
	// over it, independently of what the headers claim.
	left := int64(10)
	r := &budgetReader{r: strings.NewReader(strings.Repeat("x", 11)), left: &left}
	b, err := io.ReadAll(r)
	if !errors.Is(err, ErrTooLarge) || len(b) != 10 || !r.exceeded {
		t.Fatalf("over budget: read %d bytes, err %v, exceeded %v", len(b), err, r.exceeded)
	}
	left = 11
	r = &budgetReader{r: strings.NewReader(strings.Repeat("x", 11)), left: &left}
	if b, err := io.ReadAll(r); err != nil || len(b) != 11 || r.exceeded {
		t.Fatalf("exactly at budget: read %d bytes, err %v", len(b), err)
	}
}

func TestDOCXLimits(t *testing.T) {
	data := docx(t, "word/document.xml", docBody)
	if _, err := DOCX(data, Limits{MaxTextBytes: 40}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxTextBytes: got %v, want ErrTooLarge", err)
	}
	if _, err := DOCX(data, Limits{MaxTextBytes: int64(len(docWant))}); err != nil {
		t.Errorf("text exactly at the limit: %v", err)
	}
	if _, err := DOCX(data, Limits{MaxEntries: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxEntries: got %v, want ErrTooLarge", err)
	}
	if _, err := DOCX(data, Limits{MaxDecompressedBytes: 500}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxDecompressedBytes: got %v, want ErrTooLarge", err)
	}
}

func FuzzDOCX(f *testing.F) {
	f.Add(docx(f, "word/document.xml", docBody))
	f.Add(docx(f, "word/document.xml", `<w:tbl><w:tr><w:tc><w:tbl><w:tr><w:tc><w:p><w:r><w:t>x</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:tc></w:tr></w:tbl>`))
	f.Add(docx(f, "../../evil.xml", `<w:p/>`))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		s, err := DOCX(data, Limits{MaxDecompressedBytes: 4 << 20, MaxTextBytes: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if int64(len(s)) > 1<<20+1<<10 {
			t.Fatalf("text of %d bytes is over the limit", len(s))
		}
	})
}
