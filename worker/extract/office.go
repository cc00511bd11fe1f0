package extract

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
	"golang.org/x/net/html/charset"
)

// officeZip opens a zip-based office file within DOCX's budgets: at most
// lim.MaxEntries entries, at most lim.MaxDecompressedBytes declared.
func officeZip(kind string, data []byte, lim Limits) (*zip.Reader, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("%w: %s is not a readable zip archive: %v", ErrCorrupt, kind, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %s has %d zip entries, over the limit of %d", ErrTooLarge, kind, len(zr.File), lim.MaxEntries)
	}
	var total uint64
	for _, f := range zr.File {
		total += f.UncompressedSize64
	}
	if total > uint64(lim.MaxDecompressedBytes) {
		return nil, fmt.Errorf("%w: %s declares %d decompressed bytes, over the limit of %d (zip bomb?)", ErrTooLarge, kind, total, lim.MaxDecompressedBytes)
	}
	return zr, nil
}

// XLSX returns a workbook's sheets as tables: "Sheet: <name>", then one
// line per row with the cells' formatted values separated by " | "
// (github.com/xuri/excelize). Budgets as DOCX's: entries, decompressed
// bytes (declared, and actual through excelize's unzip limits), text.
func XLSX(data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	if _, err := officeZip("XLSX", data, lim); err != nil {
		return "", err
	}
	f, err := excelize.OpenReader(bytes.NewReader(data), excelize.Options{
		UnzipSizeLimit: lim.MaxDecompressedBytes, UnzipXMLSizeLimit: min(lim.MaxDecompressedBytes, 16<<20)})
	if err != nil {
		if strings.Contains(err.Error(), "size limit") {
			return "", fmt.Errorf("%w: XLSX: %v", ErrTooLarge, err)
		}
		return "", fmt.Errorf("%w: XLSX: %v", ErrCorrupt, err)
	}
	defer f.Close()
	var b strings.Builder
	for _, sheet := range f.GetSheetList() {
		rows, err := f.GetRows(sheet)
		if err != nil {
			return "", fmt.Errorf("%w: XLSX sheet %q: %v", ErrCorrupt, sheet, err)
		}
		fmt.Fprintf(&b, "Sheet: %s\n", sheet)
		for _, row := range rows {
			for len(row) > 0 && strings.TrimSpace(row[len(row)-1]) == "" {
				row = row[:len(row)-1]
			}
			if len(row) == 0 {
				continue
			}
			b.WriteString(strings.Join(row, " | "))
			b.WriteByte('\n')
			if int64(b.Len()) > lim.MaxTextBytes {
				return "", fmt.Errorf("%w: XLSX has more than %d bytes of text", ErrTooLarge, lim.MaxTextBytes)
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// PPTX returns a deck's text: "Slide N" then the text of its shapes (one
// line per paragraph), and "Notes:" with the speaker notes the slide's
// relationships name. Slides come in their number order (slide1.xml,
// slide2.xml, …).
func PPTX(data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	zr, err := officeZip("PPTX", data, lim)
	if err != nil {
		return "", err
	}
	budget := lim.MaxDecompressedBytes
	type slide struct {
		n int
		f *zip.File
	}
	var slides []slide
	for _, f := range zr.File {
		name := path.Clean(f.Name)
		if dir, base := path.Split(name); dir == "ppt/slides/" && strings.HasPrefix(base, "slide") && strings.HasSuffix(base, ".xml") {
			if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(base, "slide"), ".xml")); err == nil {
				slides = append(slides, slide{n, f})
			}
		}
	}
	if len(slides) == 0 {
		return "", fmt.Errorf("%w: PPTX has no slides (ppt/slides/slideN.xml)", ErrCorrupt)
	}
	sort.Slice(slides, func(i, j int) bool { return slides[i].n < slides[j].n })
	var b strings.Builder
	for i, s := range slides {
		text, err := readPart(s.f, &budget, func(r io.Reader) (string, error) { return xmlParagraphs(r, "p", lim.MaxTextBytes) })
		if err != nil {
			return "", fmt.Errorf("PPTX %s: %w", s.f.Name, err)
		}
		fmt.Fprintf(&b, "Slide %d\n%s", i+1, text)
		if notes := findPart(zr, notesOf(zr, s.f.Name, &budget)); notes != nil {
			text, err := readPart(notes, &budget, func(r io.Reader) (string, error) { return xmlParagraphs(r, "p", lim.MaxTextBytes) })
			if err != nil {
				return "", fmt.Errorf("PPTX %s: %w", notes.Name, err)
			}
			if strings.TrimSpace(text) != "" {
				fmt.Fprintf(&b, "Notes:\n%s", text)
			}
		}
		b.WriteByte('\n')
		if int64(b.Len()) > lim.MaxTextBytes {
			return "", fmt.Errorf("%w: PPTX has more than %d bytes of text", ErrTooLarge, lim.MaxTextBytes)
		}
	}
	return b.String(), nil
}

// notesOf is the notes slide a slide's relationships name ("" if none).
func notesOf(zr *zip.Reader, slide string, budget *int64) string {
	dir, base := path.Split(slide)
	rels := findPart(zr, dir+"_rels/"+base+".rels")
	if rels == nil {
		return ""
	}
	target, _ := readPart(rels, budget, func(r io.Reader) (string, error) {
		d := xml.NewDecoder(r)
		for {
			tok, err := d.Token()
			if err != nil {
				return "", nil
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "Relationship" {
				var typ, tgt string
				for _, a := range se.Attr {
					switch a.Name.Local {
					case "Type":
						typ = a.Value
					case "Target":
						tgt = a.Value
					}
				}
				if strings.HasSuffix(typ, "/notesSlide") {
					return path.Clean(path.Join(dir, tgt)), nil
				}
			}
		}
	})
	return target
}

// ODT returns an OpenDocument text's paragraphs and headings
// (content.xml), one per line.
func ODT(data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	zr, err := officeZip("ODT", data, lim)
	if err != nil {
		return "", err
	}
	f := findPart(zr, "content.xml")
	if f == nil {
		return "", fmt.Errorf("%w: ODT has no content.xml", ErrCorrupt)
	}
	budget := lim.MaxDecompressedBytes
	text, err := readPart(f, &budget, func(r io.Reader) (string, error) { return xmlParagraphs(r, "p", lim.MaxTextBytes, "h") })
	if err != nil {
		return "", fmt.Errorf("ODT content.xml: %w", err)
	}
	return text, nil
}

// xmlParagraphs collects the character data inside elements named para
// (or any of also), one line each; tab elements give a tab, line-break
// and br a newline, s (ODF) a space.
func xmlParagraphs(r io.Reader, para string, maxText int64, also ...string) (string, error) {
	d := xml.NewDecoder(r)
	d.CharsetReader = charset.NewReaderLabel
	var b strings.Builder
	depth := 0
	isPara := func(n string) bool { return n == para || contains(also, n) }
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return b.String(), nil
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return "", err
			}
			return "", fmt.Errorf("%w: xml: %v", ErrCorrupt, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case isPara(t.Name.Local):
				depth++
			case depth > 0 && t.Name.Local == "tab":
				b.WriteByte('\t')
			case depth > 0 && (t.Name.Local == "line-break" || t.Name.Local == "br"):
				b.WriteByte('\n')
			case depth > 0 && t.Name.Local == "s":
				b.WriteByte(' ')
			}
		case xml.EndElement:
			if isPara(t.Name.Local) && depth > 0 {
				depth--
				if depth == 0 {
					b.WriteByte('\n')
				}
			}
		case xml.CharData:
			if depth > 0 {
				b.Write(t)
			}
		}
		if int64(b.Len()) > maxText {
			return "", fmt.Errorf("%w: more than %d bytes of text", ErrTooLarge, maxText)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
