package caption

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// maxSidecarBytes caps a product sidecar file.
const maxSidecarBytes = 256 << 20

// productTables loads product sidecars (CSV or JSONL: image key → SKU,
// product name, brand) once per location and keeps them for the process.
type productTables struct {
	mu     sync.Mutex
	tables map[string]map[string]prompts.Product
}

// product finds the product data of an item: by the image's key relative to
// its source, its full URL, or its file name.
func (s *Stage) product(ctx context.Context, p jobs.ItemPayload) (*prompts.Product, error) {
	if p.Options.Products == "" {
		return nil, nil
	}
	t, err := s.products.load(ctx, s.cfg.Open, p.Options.Products)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{p.Source.Key, p.Source.URL(), path.Base(p.Source.Key)} {
		if pr, ok := t[k]; ok {
			return &pr, nil
		}
	}
	return nil, nil
}

func (pt *productTables) load(ctx context.Context, open Opener, url string) (map[string]prompts.Product, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if t, ok := pt.tables[url]; ok {
		return t, nil
	}
	dir, key := path.Split(url)
	if strings.HasPrefix(url, "s3://") && strings.Count(strings.TrimPrefix(url, "s3://"), "/") == 0 {
		return nil, stage.Permanent(fmt.Sprintf("product sidecar %s: not a file", url), nil)
	}
	st, err := open(ctx, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	t, err := readProducts(ctx, st, key)
	if err != nil {
		return nil, stage.Permanent(fmt.Sprintf("product sidecar %s: %v", url, err), err)
	}
	if pt.tables == nil {
		pt.tables = map[string]map[string]prompts.Product{}
	}
	pt.tables[url] = t
	return t, nil
}

// readProducts parses a CSV (with a header row naming key/image, sku,
// name/product_name, brand) or JSONL ({"key": ..., "sku": ..., "name": ...,
// "brand": ...} per line) sidecar.
func readProducts(ctx context.Context, st storage.Store, key string) (map[string]prompts.Product, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSidecarBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSidecarBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxSidecarBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if strings.HasSuffix(key, ".jsonl") || strings.HasSuffix(key, ".ndjson") || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return parseJSONL(data)
	}
	return parseCSV(data)
}

func parseJSONL(data []byte) (map[string]prompts.Product, error) {
	m := map[string]prompts.Product{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		get := func(names ...string) string {
			for _, k := range names {
				if v, ok := r[k]; ok && v != nil {
					return strings.TrimSpace(fmt.Sprint(v))
				}
			}
			return ""
		}
		k := get("key", "image", "image_key", "file")
		if k == "" {
			return nil, fmt.Errorf("line %d: no \"key\"", n)
		}
		m[k] = prompts.Product{SKU: get("sku", "SKU"), Name: get("name", "product_name", "title"), Brand: get("brand")}
	}
	return m, sc.Err()
}

func parseCSV(data []byte) (map[string]prompts.Product, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return map[string]prompts.Product{}, nil
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	idx := func(names ...string) int {
		for _, n := range names {
			if i, ok := col[n]; ok {
				return i
			}
		}
		return -1
	}
	ki, si, ni, bi := idx("key", "image", "image_key", "file"), idx("sku"), idx("name", "product_name", "title"), idx("brand")
	if ki < 0 {
		return nil, fmt.Errorf("no key column in the header (key, image, image_key or file)")
	}
	cell := func(row []string, i int) string {
		if i < 0 || i >= len(row) {
			return ""
		}
		return strings.TrimSpace(row[i])
	}
	m := map[string]prompts.Product{}
	for _, row := range rows[1:] {
		if k := cell(row, ki); k != "" {
			m[k] = prompts.Product{SKU: cell(row, si), Name: cell(row, ni), Brand: cell(row, bi)}
		}
	}
	return m, nil
}
