package feedfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/jobs"
)

// Row is one row of a feed: an image URL with its optional SKU, name and
// key. Err, when set, says why the row cannot be fetched (it ends failed
// in the manifest with that reason); Line is its line in the file.
type Row struct {
	URL, SKU, Name, Key string
	Line                int
	Err                 string
}

// Parse reads a feed file: JSONL (a name ending .jsonl/.ndjson, or content
// starting with "{") or CSV with a header.
func Parse(name string, data []byte) ([]Row, error) {
	var rows []Row
	ext := strings.ToLower(path.Ext(name))
	if ext == ".jsonl" || ext == ".ndjson" || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			r := Row{Line: n}
			if err := json.Unmarshal(line, &m); err != nil {
				r.Err = fmt.Sprintf("line %d is not JSON: %v", n, err)
			}
			str := func(keys ...string) string {
				for _, k := range keys {
					if v, ok := m[k]; ok && v != nil {
						return strings.TrimSpace(fmt.Sprint(v))
					}
				}
				return ""
			}
			r.URL, r.SKU, r.Name, r.Key = str("url", "image_url", "image"), str("sku"), str("name"), str("key")
			rows = append(rows, finish(r))
		}
		return rows, sc.Err()
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	get := func(rec []string, keys ...string) string {
		for _, k := range keys {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
		}
		return ""
	}
	if _, ok := col["url"]; !ok {
		if _, ok := col["image_url"]; !ok {
			if _, ok := col["image"]; !ok {
				return nil, fmt.Errorf("CSV header %v has no url, image_url or image column", head)
			}
		}
	}
	for n := 2; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		r := Row{Line: n}
		if err != nil {
			r.Err = fmt.Sprintf("line %d: %v", n, err)
		} else {
			r.URL, r.SKU, r.Name, r.Key = get(rec, "url", "image_url", "image"), get(rec, "sku"), get(rec, "name"), get(rec, "key")
		}
		rows = append(rows, finish(r))
	}
}

// finish checks the URL and gives the row a key.
func finish(r Row) Row {
	u, err := url.Parse(r.URL)
	switch {
	case r.Err != "":
	case r.URL == "":
		r.Err = fmt.Sprintf("line %d has no image URL", r.Line)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		r.Err = fmt.Sprintf("line %d: %q is not an http(s) URL", r.Line, r.URL)
	}
	if r.Key == "" {
		if u != nil && u.Host != "" {
			r.Key = strings.TrimSuffix(u.Host+u.EscapedPath(), "/")
			if u.RawQuery != "" {
				r.Key += "_" + jobs.ItemID("", u.RawQuery)[:8]
			}
		} else {
			r.Key = fmt.Sprintf("line-%d", r.Line)
		}
	}
	r.Key = strings.TrimLeft(path.Clean("/"+r.Key), "/")
	r.SKU, r.Name = cut(r.SKU, MaxSKU), cut(r.Name, MaxName)
	return r
}

// MaxSKU and MaxName bound a row's SKU and product name (in bytes): they
// travel in the item's payload (jobs.Ref.SKU, Name), which must stay
// small. Longer ones are cut, ending with "…".
const (
	MaxSKU  = 100
	MaxName = 200
)

// cut is s cut to at most n bytes at a rune boundary, ending with "…"
// when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
