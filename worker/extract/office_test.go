package extract

import (
	"archive/zip"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/sniff"
)

// feeSchedule is a two-sheet .xlsx fee schedule made with excelize.
func feeSchedule(t *testing.T) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "Fees"); err != nil {
		t.Fatal(err)
	}
	rows := [][]any{{"Service", "Unit", "Fee (EUR)"}, {"Due diligence", "hour", 240}, {"Escrow", "deal", 1500.5}}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Fees", cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.NewSheet("Terms"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetCellValue("Terms", "A1", "Payable within 30 days"); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zipOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i+1 < len(files); i += 2 {
		w, err := zw.Create(files[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const pNS = `xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"`

// deck is a two-slide .pptx (slide 2 listed first in the archive, with
// speaker notes on slide 1).
func deck(t *testing.T) []byte {
	slide := func(lines ...string) string {
		var b strings.Builder
		b.WriteString(`<p:sld ` + pNS + `><p:cSld><p:spTree><p:sp><p:txBody>`)
		for _, l := range lines {
			b.WriteString(`<a:p><a:r><a:t>` + l + `</a:t></a:r></a:p>`)
		}
		b.WriteString(`</p:txBody></p:sp></p:spTree></p:cSld></p:sld>`)
		return b.String()
	}
	return zipOf(t,
		"[Content_Types].xml", `<Types/>`,
		"ppt/presentation.xml", `<p:presentation `+pNS+`/>`,
		"ppt/slides/slide2.xml", slide("Pricing", "Fixed fee per closing"),
		"ppt/slides/slide1.xml", slide("Project Falcon", "Acquisition of Beta GmbH"),
		"ppt/slides/_rels/slide1.xml.rels", `<Relationships><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide" Target="../notesSlides/notesSlide1.xml"/></Relationships>`,
		"ppt/notesSlides/notesSlide1.xml", `<p:notes `+pNS+`><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>Mention the break fee</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>`,
	)
}

func TestXLSXSheetsAsTables(t *testing.T) {
	data := feeSchedule(t)
	if got := sniff.Sniff("fees.xlsx", data); got != jobs.FileXLSX {
		t.Fatalf("sniffed %s", got)
	}
	text, err := Document(jobs.FileXLSX, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Sheet: Fees\nService | Unit | Fee (EUR)\nDue diligence | hour | 240\nEscrow | deal | 1500.5\n", "Sheet: Terms\nPayable within 30 days\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if _, err := XLSX(data, Limits{MaxEntries: 3}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the entry budget: %v", err)
	}
	if _, err := XLSX(data, Limits{MaxDecompressedBytes: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the decompressed budget: %v", err)
	}
}

func TestPPTXSlidesAndNotes(t *testing.T) {
	data := deck(t)
	if got := sniff.Sniff("deck.pptx", data); got != jobs.FilePPTX {
		t.Fatalf("sniffed %s", got)
	}
	text, err := Document(jobs.FilePPTX, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := "Slide 1\nProject Falcon\nAcquisition of Beta GmbH\nNotes:\nMention the break fee\n\nSlide 2\nPricing\nFixed fee per closing\n\n"
	if text != want {
		t.Errorf("got\n%q\nwant\n%q", text, want)
	}
	if _, err := PPTX(data, Limits{MaxDecompressedBytes: 200}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the decompressed budget: %v", err)
	}
}

func TestODTAndRTF(t *testing.T) {
	odt := zipOf(t, "mimetype", "application/vnd.oasis.opendocument.text",
		"content.xml", `<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text><text:h>Lease</text:h><text:p>Rent<text:tab/>900 EUR<text:line-break/>monthly</text:p></office:text></office:body></office:document-content>`)
	if got := sniff.Sniff("lease.odt", odt); got != jobs.FileODT {
		t.Fatalf("sniffed %s", got)
	}
	if text, err := Document(jobs.FileODT, odt, Limits{}); err != nil || text != "Lease\nRent\t900 EUR\nmonthly\n" {
		t.Errorf("ODT: %q, %v", text, err)
	}
	rtf := []byte(`{\rtf1\ansi\uc1{\fonttbl{\f0 Times;}}{\*\generator Writer;}\f0 Fee: 120 \'80 per hour\par Na\u239?ve \{clause\}\tab end}`)
	if got := sniff.Sniff("fees.rtf", rtf); got != jobs.FileRTF {
		t.Fatalf("sniffed %s", got)
	}
	if text, err := Document(jobs.FileRTF, rtf, Limits{}); err != nil || text != "Fee: 120 € per hour\nNaïve {clause}\tend" {
		t.Errorf("RTF: %q, %v", text, err)
	}
}
