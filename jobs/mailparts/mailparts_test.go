package mailparts_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/mailparts"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadPDFAndJPEG(t *testing.T) {
	data := read(t, "with_pdf_and_jpeg.eml")
	m, err := mailparts.Read(data, mailparts.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Signed services agreement" || !strings.Contains(m.From, "ana@example.com") || !strings.Contains(m.Body, "signed agreement") || m.BodyHTML {
		t.Fatalf("message %+v", m)
	}
	if len(m.Parts) != 2 {
		t.Fatalf("parts %+v, want the PDF and the JPEG", m.Parts)
	}
	pdf, jpg := m.Parts[0], m.Parts[1]
	if pdf.Name != "agreement.pdf" || pdf.ContentType != "application/pdf" || !bytes.HasPrefix(pdf.Head, []byte("%PDF-")) {
		t.Errorf("pdf part %+v", pdf)
	}
	if jpg.Name != "site photo.jpg" || !bytes.HasPrefix(jpg.Head, []byte{0xFF, 0xD8, 0xFF}) {
		t.Errorf("jpeg part %+v", jpg)
	}
	want, _ := os.ReadFile("../../examples/products/dandelions.png") // the JPEG attached
	got, err := mailparts.Open(data, jpg.Path, mailparts.Limits{})
	if err != nil || !bytes.Equal(got, want) || jpg.Size != int64(len(want)) {
		t.Fatalf("Open(%s): %d bytes (listed %d), err %v; want the %d attached", jpg.Path, len(got), jpg.Size, err, len(want))
	}
	// A huge attachment is listed as too large and cannot be opened.
	m, err = mailparts.Read(data, mailparts.Limits{MaxPartBytes: 10_000})
	if err != nil || !m.Parts[1].TooLarge || m.Parts[0].TooLarge {
		t.Fatalf("with a 10 KB part cap: %+v, %v", m.Parts, err)
	}
	if _, err := mailparts.Open(data, jpg.Path, mailparts.Limits{MaxPartBytes: 10_000}); !errors.Is(err, mailparts.ErrBomb) {
		t.Errorf("Open of a too-large part: %v", err)
	}
	if _, err := mailparts.Open(data, "9", mailparts.Limits{}); err == nil {
		t.Error("Open of a part that is not there succeeded")
	}
}

func TestReadNestedMessage(t *testing.T) {
	data := read(t, "nested_message.eml")
	m, err := mailparts.Read(data, mailparts.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "See the message below.\n" {
		t.Errorf("body %q: the nested message's body must not be the outer one's", m.Body)
	}
	if len(m.Parts) != 2 {
		t.Fatalf("parts %+v, want the nested message and its PDF", m.Parts)
	}
	msg, pdf := m.Parts[0], m.Parts[1]
	if !msg.Message || msg.Name != "Fwd price list.eml" || msg.Parent != "" {
		t.Errorf("nested message part %+v", msg)
	}
	if pdf.Name != "prices.pdf" || pdf.Parent != msg.Path || !strings.HasPrefix(pdf.Path, msg.Path+".") {
		t.Errorf("nested PDF %+v (message at %s)", pdf, msg.Path)
	}
	inner, err := mailparts.Open(data, msg.Path, mailparts.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	im, err := mailparts.Read(inner, mailparts.Limits{})
	if err != nil || im.Subject != "Fwd: price list" || len(im.Parts) != 1 {
		t.Fatalf("the nested message read on its own: %+v, %v", im, err)
	}
	b, err := mailparts.Open(data, pdf.Path, mailparts.Limits{})
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-1.4")) || !bytes.Contains(b, []byte("Price list")) {
		t.Fatalf("nested PDF: %q, %v", b, err)
	}
}

func TestReadBombRefused(t *testing.T) {
	_, err := mailparts.Read(read(t, "bomb_nested_parts.eml"), mailparts.Limits{})
	if !errors.Is(err, mailparts.ErrBomb) || !strings.Contains(err.Error(), "nested deeper than 8") {
		t.Fatalf("err %v, want ErrBomb for the nesting", err)
	}
	_, err = mailparts.Read(read(t, "with_pdf_and_jpeg.eml"), mailparts.Limits{MaxParts: 2})
	if !errors.Is(err, mailparts.ErrBomb) {
		t.Fatalf("three parts under a two-part budget: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	for _, n := range []string{"with_pdf_and_jpeg.eml", "nested_message.eml", "bomb_nested_parts.eml"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(b[:min(len(b), 3000)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mailparts.Read(b, mailparts.Limits{MaxPartBytes: 1 << 16})
		if err != nil {
			return
		}
		for _, p := range m.Parts {
			_, _ = mailparts.Open(b, p.Path, mailparts.Limits{MaxPartBytes: 1 << 16})
		}
	})
}
