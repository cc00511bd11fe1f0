package finalize

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// The export files finalize writes beside a batch's manifest (and copies
// to the output's root, like the manifest): the contract register of a
// summarize batch, the catalog of a caption batch, and for each the items
// that have no row (failed, skipped or cancelled) with their reasons.
const (
	RegisterCSV       = "register.csv"
	RegisterJSONL     = "register.jsonl"
	RegisterFailedCSV = "register_failed.csv"
	CatalogCSV        = "catalog.csv"
	CatalogJSONL      = "catalog.jsonl"
	CatalogFailedCSV  = "catalog_failed.csv"
	// ShopifyCSV holds the image columns of Shopify's product CSV import,
	// written when the product sidecar carries shop handles.
	ShopifyCSV = "catalog_shopify.csv"
)

const (
	csvType   = "text/csv; charset=utf-8"
	jsonlType = "application/x-ndjson"
	// utf8BOM starts every CSV: Excel reads a CSV without it in the
	// system's legacy code page (mojibake for "é", "ü", "€"); LibreOffice
	// and encoding/csv readers skip it.
	utf8BOM = "\ufeff"
	// maxResultBytes caps one result JSON read for an export row.
	maxResultBytes = 16 << 20
)

// exportFile is one export being written to a temporary file (so that a
// batch of any size streams through bounded memory), then put.
type exportFile struct {
	name, ctype string
	tmp         *os.File
	w           *bufio.Writer
	csv         *csv.Writer
	json        *json.Encoder
	rows        int
}

func newExportFile(name string, header []string) (*exportFile, error) {
	tmp, err := os.CreateTemp("", "llamapipe-export-*")
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", name, err)
	}
	_ = os.Remove(tmp.Name()) // unlinked: gone when closed, whatever happens
	f := &exportFile{name: name, tmp: tmp, w: bufio.NewWriterSize(tmp, 64<<10)}
	if header == nil {
		f.ctype = jsonlType
		f.json = json.NewEncoder(f.w)
		f.json.SetEscapeHTML(false)
		return f, nil
	}
	f.ctype = csvType
	f.w.WriteString(utf8BOM)
	f.csv = csv.NewWriter(f.w)
	f.csv.UseCRLF = true // RFC 4180, what Excel writes
	return f, f.csv.Write(header)
}

// row writes one CSV record, each cell made safe for spreadsheets.
func (f *exportFile) row(cells []string) error {
	f.rows++
	for i, c := range cells {
		cells[i] = cell(c)
	}
	return f.csv.Write(cells)
}

// object writes one JSON line.
func (f *exportFile) object(v any) error {
	f.rows++
	return f.json.Encode(v)
}

// put flushes the file and writes it to key in out (again for each key).
func (f *exportFile) put(ctx context.Context, out storage.Store, key string) error {
	if f.csv != nil {
		f.csv.Flush()
		if err := f.csv.Error(); err != nil {
			return fmt.Errorf("export %s: %w", f.name, err)
		}
	}
	if err := f.w.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", f.name, err)
	}
	st, err := f.tmp.Stat()
	if err != nil {
		return fmt.Errorf("export %s: %w", f.name, err)
	}
	size := st.Size()
	if err := out.Put(ctx, key, io.NewSectionReader(f.tmp, 0, size), size, f.ctype); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (f *exportFile) close() { _ = f.tmp.Close() }

// cell makes text safe in a spreadsheet cell: control characters other
// than line breaks and tabs are dropped, and text that Excel or LibreOffice
// would read as a formula (starting with =, +, -, @, a tab or a carriage
// return) gets a leading apostrophe, as OWASP advises against CSV
// injection: a contract or a product photo is outside input.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' {
			return -1
		}
		return r
	}, s)
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) && !isNumber(s) {
		return "'" + s
	}
	return s
}

func isNumber(s string) bool {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return err == nil && strings.TrimLeft(s, "+-0123456789.eE") == ""
}

// exportSet is the files of one export (register or catalog).
type exportSet struct {
	files []*exportFile
}

func (s *exportSet) add(f *exportFile, err error) (*exportFile, error) {
	if f != nil {
		s.files = append(s.files, f)
	}
	return f, err
}

func (s *exportSet) close() {
	for _, f := range s.files {
		f.close()
	}
}

// putAll writes every file beside the batch's manifest, then (for a batch
// with its own folder) copies it to the output's root, as the manifest is.
func (s *exportSet) putAll(ctx context.Context, out storage.Store, b jobs.Batch) error {
	dir := path.Dir(b.ManifestPath())
	for _, f := range s.files {
		if err := f.put(ctx, out, path.Join(dir, f.name)); err != nil {
			return err
		}
	}
	if b.ManifestPath() == jobs.ManifestKey {
		return nil
	}
	for _, f := range s.files {
		if err := f.put(ctx, out, f.name); err != nil {
			return err
		}
	}
	return nil
}

// ExportPath is where a batch's export file name is written (beside its
// manifest).
func ExportPath(b jobs.Batch, name string) string { return path.Join(path.Dir(b.ManifestPath()), name) }

// readResult reads one result JSON of an item.
func readResult(ctx context.Context, out storage.Store, key string) (map[string]any, error) {
	rc, err := out.Get(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(rc, maxResultBytes)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return doc, nil
}

// resultKey returns the entry's result whose key ends with suffix.
func resultKey(e jobs.Entry, suffix string) string {
	for _, r := range e.Results {
		if strings.HasSuffix(r, suffix) {
			return r
		}
	}
	return ""
}

// errNoResult is an entry done without the result an export reads.
var errNoResult = errors.New("no result file")

// text is a decoded JSON value as cell text: a fact's value, a list
// joined with "; ".
func text(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(t)
	case bool:
		if t {
			return "yes"
		}
		return "no"
	case map[string]any:
		if _, ok := t["quote"]; ok {
			return text(t["value"])
		}
		b, _ := json.Marshal(t)
		return string(b)
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			if s := text(e); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v)
}
