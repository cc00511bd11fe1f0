package caption

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/products"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// productTables loads product sidecars (CSV or JSONL: image key → SKU,
// product name, brand) once per location and keeps them for the process.
type productTables struct {
	mu     sync.Mutex
	tables map[string]map[string]prompts.Product
}

// product finds the product data of an item: by the image's key relative to
// its source, its full URL, or its file name.
// A feed row's own SKU and name (jobs.Ref.SKU, Name) win over the
// sidecar's; the sidecar still gives the brand.
func (s *Stage) product(ctx context.Context, p jobs.ItemPayload) (*prompts.Product, error) {
	pr, err := s.sidecarProduct(ctx, p)
	if err != nil || (p.Source.SKU == "" && p.Source.Name == "") {
		return pr, err
	}
	if pr == nil {
		pr = &prompts.Product{}
	}
	pr.SKU, pr.Name = cmp.Or(p.Source.SKU, pr.SKU), cmp.Or(p.Source.Name, pr.Name)
	return pr, nil
}

// sidecarProduct finds the product of an item in the batch's product
// sidecar (nil: none, or not in it).
func (s *Stage) sidecarProduct(ctx context.Context, p jobs.ItemPayload) (*prompts.Product, error) {
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

// readProducts parses a product sidecar (see products.Read) into the product
// context of the caption prompt.
func readProducts(ctx context.Context, st storage.Store, key string) (map[string]prompts.Product, error) {
	rows, err := products.Read(ctx, st, key)
	if err != nil {
		return nil, err
	}
	m := make(map[string]prompts.Product, len(rows))
	for k, r := range rows {
		m[k] = prompts.Product{SKU: r.SKU, Name: r.Name, Brand: r.Brand}
	}
	return m, nil
}

// productMeta is the product as the caption's meta records it.
func productMeta(p *prompts.Product) *stage.Product {
	if p == nil {
		return nil
	}
	return &stage.Product{SKU: p.SKU, Name: p.Name, Brand: p.Brand}
}
