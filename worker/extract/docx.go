package extract

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/net/html/charset"
)

// Default limits.
const (
	DefaultMaxDecompressedBytes = 100 << 20
	DefaultMaxTextBytes         = 50 << 20
	DefaultMaxEntries           = 10000
)

// Limits bound the work DOCX does on hostile input. Zero fields take the
// defaults.
type Limits struct {
	// MaxDecompressedBytes caps the bytes decompressed from the archive,
	// all parts read together. Default 100 MiB.
	MaxDecompressedBytes int64
	// MaxTextBytes caps the extracted text. Default 50 MiB.
	MaxTextBytes int64
	// MaxEntries caps the number of entries in the archive. Default 10000.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDecompressedBytes <= 0 {
		l.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = DefaultMaxTextBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// DOCX returns the text of the main document part of a Word (OOXML)
// document: the part the package relationships name (normally
// word/document.xml). Each paragraph (w:p) is a block separated from the
// next by a blank line; w:t is text, w:tab a tab, w:br and w:cr line breaks,
// w:noBreakHyphen a hyphen; deleted and moved-away revisions and
// markup-compatibility fallbacks are skipped. In tables, cells are
// separated by " | " and rows by a line break; a cell's paragraphs are
// joined by spaces. Headers, footers, footnotes and comments are not read.
//
// Errors: not a zip or no main document part → ErrCorrupt; more than
// lim.MaxEntries entries, more than lim.MaxDecompressedBytes decompressed
// (declared or actual) or more than lim.MaxTextBytes of text → ErrTooLarge.
func DOCX(data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return "", fmt.Errorf("%w: DOCX is not a readable zip archive: %v", ErrCorrupt, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return "", fmt.Errorf("%w: DOCX has %d zip entries, over the limit of %d", ErrTooLarge, len(zr.File), lim.MaxEntries)
	}
	budget := lim.MaxDecompressedBytes
	name := mainPartName(zr, &budget)
	f := findPart(zr, name)
	if f == nil && name != "word/document.xml" {
		name = "word/document.xml"
		f = findPart(zr, name)
	}
	if f == nil {
		return "", fmt.Errorf("%w: DOCX has no main document part (word/document.xml)", ErrCorrupt)
	}
	text, err := readPart(f, &budget, func(r io.Reader) (string, error) {
		return documentText(r, lim.MaxTextBytes)
	})
	if err != nil {
		return "", fmt.Errorf("DOCX %s: %w", name, err)
	}
	return text, nil
}

// readPart opens a zip entry and hands a reader that enforces the
// decompression budget to fn.
func readPart(f *zip.File, budget *int64, fn func(io.Reader) (string, error)) (string, error) {
	if f.UncompressedSize64 > uint64(*budget) {
		return "", fmt.Errorf("%w: declares %d decompressed bytes, over the remaining limit of %d", ErrTooLarge, f.UncompressedSize64, *budget)
	}
	rc, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("%w: open: %v", ErrCorrupt, err)
	}
	defer rc.Close()
	lr := &budgetReader{r: rc, left: budget}
	s, err := fn(lr)
	if lr.exceeded {
		return "", fmt.Errorf("%w: decompresses to more than the limit (zip bomb?)", ErrTooLarge)
	}
	return s, err
}

// budgetReader reads until *left bytes are used up; one byte more is an
// ErrTooLarge.
type budgetReader struct {
	r        io.Reader
	left     *int64
	exceeded bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if *b.left <= 0 {
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			b.exceeded = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > *b.left {
		p = p[:*b.left]
	}
	n, err := b.r.Read(p)
	*b.left -= int64(n)
	return n, err
}

// findPart looks a part up by name; OPC part names are case-insensitive.
func findPart(zr *zip.Reader, name string) *zip.File {
	for _, f := range zr.File {
		if strings.EqualFold(strings.TrimPrefix(f.Name, "/"), name) {
			return f
		}
	}
	return nil
}

// mainPartName reads _rels/.rels for the officeDocument relationship;
// word/document.xml if that is missing or unreadable.
func mainPartName(zr *zip.Reader, budget *int64) string {
	const fallback = "word/document.xml"
	f := findPart(zr, "_rels/.rels")
	if f == nil {
		return fallback
	}
	target, err := readPart(f, budget, func(r io.Reader) (string, error) {
		var rels struct {
			Rel []struct {
				Type   string `xml:"Type,attr"`
				Target string `xml:"Target,attr"`
				Mode   string `xml:"TargetMode,attr"`
			} `xml:"Relationship"`
		}
		d := xml.NewDecoder(r)
		d.CharsetReader = charset.NewReaderLabel
		if err := d.Decode(&rels); err != nil {
			return "", err
		}
		for _, rel := range rels.Rel {
			if strings.HasSuffix(rel.Type, "/officeDocument") && !strings.EqualFold(rel.Mode, "External") {
				return rel.Target, nil
			}
		}
		return "", nil
	})
	if err != nil || target == "" {
		return fallback
	}
	p := path.Clean("/" + target)[1:]
	if p == "" {
		return fallback
	}
	return p
}

// Namespaces whose elements are skipped or interpreted.
const nsMarkupCompat = "http://schemas.openxmlformats.org/markup-compatibility/2006"

// docWriter collects paragraphs and tables.
type docWriter struct {
	out   strings.Builder
	paras []*strings.Builder // open paragraphs (nested ones come from text boxes)
	tbls  []*tableFrame
	size  int64 // bytes of text collected so far
	max   int64
}

type tableFrame struct {
	rows   []string
	row    []string
	cell   strings.Builder
	inCell bool
}

func (w *docWriter) add(s string) error {
	w.size += int64(len(s))
	if w.size > w.max {
		return fmt.Errorf("%w: text is over the limit of %d bytes", ErrTooLarge, w.max)
	}
	if n := len(w.paras); n > 0 {
		w.paras[n-1].WriteString(s)
	}
	return nil
}

// block places a finished paragraph or table: into the open table cell if
// any, else into the output separated by a blank line.
func (w *docWriter) block(s, sep string) {
	if n := len(w.tbls); n > 0 && w.tbls[n-1].inCell {
		c := &w.tbls[n-1].cell
		s = strings.Join(strings.Fields(s), " ")
		if s == "" {
			return
		}
		if c.Len() > 0 {
			c.WriteString(sep)
		}
		c.WriteString(s)
		return
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return
	}
	if w.out.Len() > 0 {
		w.out.WriteString("\n\n")
	}
	w.out.WriteString(s)
}

// documentText walks word/document.xml.
func documentText(r io.Reader, maxText int64) (string, error) {
	d := xml.NewDecoder(r)
	d.CharsetReader = charset.NewReaderLabel
	w := &docWriter{max: maxText}
	var (
		inText   int // depth inside w:t
		inRun    int // depth inside w:r
		skipping int // depth inside a skipped subtree
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return "", err
			}
			return "", fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if skipping > 0 {
				skipping++
				continue
			}
			switch {
			case t.Name.Space == nsMarkupCompat && t.Name.Local == "Fallback",
				t.Name.Local == "del", t.Name.Local == "moveFrom",
				t.Name.Local == "instrText", t.Name.Local == "delText":
				skipping = 1
				continue
			}
			switch t.Name.Local {
			case "p":
				w.paras = append(w.paras, &strings.Builder{})
			case "r":
				inRun++
			case "t":
				if inRun > 0 {
					inText++
				}
			case "tab":
				if inRun > 0 {
					err = w.add("\t")
				}
			case "br", "cr":
				if inRun > 0 {
					err = w.add("\n")
				}
			case "noBreakHyphen":
				if inRun > 0 {
					err = w.add("-")
				}
			case "tbl":
				w.tbls = append(w.tbls, &tableFrame{})
			case "tr":
				if n := len(w.tbls); n > 0 {
					w.tbls[n-1].row = nil
				}
			case "tc":
				if n := len(w.tbls); n > 0 {
					f := w.tbls[n-1]
					f.cell.Reset()
					f.inCell = true
				}
			}
		case xml.EndElement:
			if skipping > 0 {
				skipping--
				continue
			}
			switch t.Name.Local {
			case "p":
				if n := len(w.paras); n > 0 {
					s := w.paras[n-1].String()
					w.paras = w.paras[:n-1]
					w.block(s, " ")
				}
			case "r":
				if inRun > 0 {
					inRun--
				}
			case "t":
				if inText > 0 {
					inText--
				}
			case "tc":
				if n := len(w.tbls); n > 0 {
					f := w.tbls[n-1]
					f.row = append(f.row, f.cell.String())
					f.cell.Reset()
					f.inCell = false
				}
			case "tr":
				if n := len(w.tbls); n > 0 {
					f := w.tbls[n-1]
					if strings.TrimSpace(strings.Join(f.row, "")) != "" {
						f.rows = append(f.rows, strings.Join(f.row, " | "))
					}
					f.row = nil
				}
			case "tbl":
				if n := len(w.tbls); n > 0 {
					f := w.tbls[n-1]
					w.tbls = w.tbls[:n-1]
					if m := len(w.tbls); m > 0 && w.tbls[m-1].inCell {
						w.block(strings.Join(f.rows, " ; "), " ")
					} else {
						w.block(strings.Join(f.rows, "\n"), " ")
					}
				}
			}
		case xml.CharData:
			if inText > 0 && skipping == 0 {
				err = w.add(string(t))
			}
		}
		if err != nil {
			return "", err
		}
	}
	return w.out.String(), nil
}
