// Package products reads product sidecars: the CSV or JSONL file a caption
// batch names (Spec Options.Products) that maps image keys to their
// product (SKU, name, brand) and, for shop exports, the product's shop
// handle, the image's position and public URL. The caption stage puts the
// product in its prompt; finalize puts it in the catalog export.
package products

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/llamapipe/llamapipe/storage"
)

// MaxBytes caps a product sidecar file.
const MaxBytes = 256 << 20

// Row is one row of a product sidecar: an image's key and its product.
// Handle, Position and ImageSrc are for shop exports (finalize's catalog):
// the product's shop handle, the image's position among the product's
// images (0: not given) and the public URL the shop fetches it from
// (empty: not given).
type Row struct {
	Key, SKU, Name, Brand string
	Handle, ImageSrc      string
	Position              int
}

// Read parses a product sidecar at key in st: a CSV (with a header
// row naming key/image/image_key/file, sku, name/product_name/title,
// brand, and optionally handle, position/image_position and
// image_src/image_url) or JSONL ({"key": ..., "sku": ..., "name": ...,
// "brand": ..., "handle": ...} per line), keyed by image key.
func Read(ctx context.Context, st storage.Store, key string) (map[string]Row, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if strings.HasSuffix(key, ".jsonl") || strings.HasSuffix(key, ".ndjson") || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return parseJSONL(data)
	}
	return parseCSV(data)
}

// Column (and JSON key) names of a sidecar, by field.
var (
	keyNames      = []string{"key", "image", "image_key", "file"}
	skuNames      = []string{"sku"}
	nameNames     = []string{"name", "product_name", "title"}
	brandNames    = []string{"brand"}
	handleNames   = []string{"handle", "shop_handle"}
	positionNames = []string{"position", "image_position"}
	srcNames      = []string{"image_src", "image_url"}
)

func makeRow(get func(names ...string) string) Row {
	r := Row{Key: get(keyNames...), SKU: get(skuNames...), Name: get(nameNames...), Brand: get(brandNames...),
		Handle: get(handleNames...), ImageSrc: get(srcNames...)}
	if n, err := strconv.Atoi(get(positionNames...)); err == nil && n > 0 {
		r.Position = n
	}
	return r
}

func parseJSONL(data []byte) (map[string]Row, error) {
	m := map[string]Row{}
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
		row := makeRow(func(names ...string) string {
			for _, k := range names {
				for _, kk := range []string{k, strings.ToUpper(k)} {
					if v, ok := r[kk]; ok && v != nil {
						return strings.TrimSpace(fmt.Sprint(v))
					}
				}
			}
			return ""
		})
		if row.Key == "" {
			return nil, fmt.Errorf("line %d: no \"key\"", n)
		}
		m[row.Key] = row
	}
	return m, sc.Err()
}

func parseCSV(data []byte) (map[string]Row, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return map[string]Row{}, nil
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	if _, ok := firstCol(col, keyNames); !ok {
		return nil, fmt.Errorf("no key column in the header (key, image, image_key or file)")
	}
	m := map[string]Row{}
	for _, row := range rows[1:] {
		r := makeRow(func(names ...string) string {
			i, ok := firstCol(col, names)
			if !ok || i >= len(row) {
				return ""
			}
			return strings.TrimSpace(row[i])
		})
		if r.Key != "" {
			m[r.Key] = r
		}
	}
	return m, nil
}

func firstCol(col map[string]int, names []string) (int, bool) {
	for _, n := range names {
		if i, ok := col[n]; ok {
			return i, true
		}
	}
	return -1, false
}
