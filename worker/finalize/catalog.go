package finalize

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/products"
	"github.com/llamapipe/llamapipe/storage"
)

// catalogHeader is the catalog's CSV header; catalogRow its JSONL line.
var catalogHeader = []string{"key", "source", "sku", "name", "brand", "handle", "title", "alt_text", "caption", "category",
	"tags", "colors", "material", "quality_flags", "visible_text", "duplicate_of", "caption_json"}

// shopifyHeader are the image columns of Shopify's product CSV import.
var shopifyHeader = []string{"Handle", "Image Src", "Image Position", "Image Alt Text"}

type catalogRow struct {
	Key          string   `json:"key"`
	Source       string   `json:"source"`
	SKU          string   `json:"sku,omitempty"`
	Name         string   `json:"name,omitempty"`
	Brand        string   `json:"brand,omitempty"`
	Handle       string   `json:"handle,omitempty"`
	Title        string   `json:"title"`
	AltText      string   `json:"alt_text"`
	Caption      string   `json:"caption"`
	Category     string   `json:"category"`
	Tags         []string `json:"tags"`
	Colors       []string `json:"colors"`
	Material     string   `json:"material"`
	QualityFlags []string `json:"quality_flags"`
	VisibleText  string   `json:"visible_text"`
	DuplicateOf  string   `json:"duplicate_of,omitempty"`
	CaptionJSON  string   `json:"caption_json"`
}

func (r catalogRow) cells() []string {
	return []string{r.Key, r.Source, r.SKU, r.Name, r.Brand, r.Handle, r.Title, r.AltText, r.Caption, r.Category,
		strings.Join(r.Tags, "; "), strings.Join(r.Colors, "; "), r.Material, strings.Join(r.QualityFlags, "; "),
		r.VisibleText, r.DuplicateOf, r.CaptionJSON}
}

func strs(v any) []string {
	out := []string{}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if s := text(e); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// catalogRowOf reads a done image's caption into its catalog row.
func catalogRowOf(ctx context.Context, out storage.Store, e jobs.Entry) (catalogRow, error) {
	r := catalogRow{Key: e.Key, Source: e.Source, Tags: []string{}, Colors: []string{}, QualityFlags: []string{},
		CaptionJSON: resultKey(e, jobs.SuffixCaptionJSON)}
	if r.CaptionJSON == "" {
		return r, errNoResult
	}
	doc, err := readResult(ctx, out, r.CaptionJSON)
	if err != nil {
		return r, err
	}
	r.Title, r.AltText, r.Caption = text(doc["title"]), text(doc["alt_text"]), text(doc["caption"])
	r.Category, r.Material, r.VisibleText = text(doc["category"]), text(doc["material"]), text(doc["visible_text"])
	r.Tags, r.Colors = strs(doc["tags"]), strs(doc["colors"])
	if q, ok := doc["quality"].(map[string]any); ok {
		for k, v := range q {
			if v == true {
				r.QualityFlags = append(r.QualityFlags, k)
			}
		}
		sort.Strings(r.QualityFlags)
	}
	if m, ok := doc["meta"].(map[string]any); ok {
		r.DuplicateOf = text(m["duplicate_of"])
		if p, ok := m["product"].(map[string]any); ok { // the product the caption was asked with (a feed row's SKU and name win, as in the prompt)
			r.SKU, r.Name, r.Brand = text(p["sku"]), text(p["name"]), text(p["brand"])
		}
	}
	return r, nil
}

// catalogWriter writes a caption batch's catalog as its entries stream by.
type catalogWriter struct {
	set                  exportSet
	csv, jsonl, failedTo *exportFile
	shopify              *exportFile
	// sidecar is the batch's product sidecar (nil: none); positions
	// counts the images given to each handle so far.
	sidecar   map[string]products.Row
	positions map[string]int
}

func newCatalogWriter(sidecar map[string]products.Row) (*catalogWriter, error) {
	w := &catalogWriter{sidecar: sidecar, positions: map[string]int{}}
	var err error
	if w.csv, err = w.set.add(newExportFile(CatalogCSV, catalogHeader)); err != nil {
		return w, err
	}
	if w.jsonl, err = w.set.add(newExportFile(CatalogJSONL, nil)); err != nil {
		return w, err
	}
	if w.failedTo, err = w.set.add(newExportFile(CatalogFailedCSV, failedHeader)); err != nil {
		return w, err
	}
	for _, p := range sidecar {
		if p.Handle != "" {
			w.shopify, err = w.set.add(newExportFile(ShopifyCSV, shopifyHeader))
			break
		}
	}
	return w, err
}

// product finds an image's sidecar row as the caption stage does: by its
// key, its full URL, or its file name.
func (w *catalogWriter) product(e jobs.Entry) (products.Row, bool) {
	for _, k := range []string{e.Key, e.Source, path.Base(e.Source)} {
		if p, ok := w.sidecar[k]; ok && k != "" {
			return p, true
		}
	}
	return products.Row{}, false
}

func (w *catalogWriter) add(ctx context.Context, out storage.Store, e jobs.Entry) error {
	if e.Status != jobs.StatusDone {
		return w.failedTo.row(failedCells(e))
	}
	r, err := catalogRowOf(ctx, out, e)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNoResult) {
		return fmt.Errorf("catalog row of %s: %w", e.Source, err)
	}
	p, ok := w.product(e)
	if ok {
		r.SKU, r.Name, r.Brand, r.Handle = cmp.Or(r.SKU, p.SKU), cmp.Or(r.Name, p.Name), cmp.Or(r.Brand, p.Brand), p.Handle
	}
	if err := w.csv.row(r.cells()); err != nil {
		return err
	}
	if err := w.jsonl.object(r); err != nil {
		return err
	}
	if w.shopify == nil || p.Handle == "" {
		return nil
	}
	w.positions[p.Handle]++
	pos := p.Position
	if pos == 0 {
		pos = w.positions[p.Handle]
	}
	src := p.ImageSrc
	if src == "" {
		src = e.Source
	}
	return w.shopify.row([]string{p.Handle, src, strconv.Itoa(pos), r.AltText})
}

// loadProducts reads the batch's product sidecar for its catalog (nil when
// it has none).
func (f *Finalizer) loadProducts(ctx context.Context, url string) (map[string]products.Row, error) {
	if url == "" {
		return nil, nil
	}
	dir, key := path.Split(url)
	st, err := f.open(ctx, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, fmt.Errorf("product sidecar %s: %w", url, err)
	}
	rows, err := products.Read(ctx, st, key)
	if err != nil {
		return nil, fmt.Errorf("product sidecar %s: %w", url, err)
	}
	return rows, nil
}

// writeExports streams the batch's entries once more (page by page, as
// the manifest) into its register (documents) and catalog (images), and
// writes them beside the manifest and at the output's root. Only the
// files of kinds the batch has are written. It returns the tally of the
// digests' quotes for report.md (nil without documents).
func (f *Finalizer) writeExports(ctx context.Context, out storage.Store, b jobs.Batch) (*quoteTally, error) {
	var reg *registerWriter
	var cat *catalogWriter
	defer func() {
		if reg != nil {
			reg.set.close()
		}
		if cat != nil {
			cat.set.close()
		}
	}()
	err := f.tracker.EachEntry(ctx, b.ID, func(e jobs.Entry) error {
		var err error
		switch e.Kind {
		case jobs.KindDocument:
			if reg == nil {
				if reg, err = newRegisterWriter(); err != nil {
					return err
				}
			}
			return reg.add(ctx, out, e)
		case jobs.KindImage:
			if cat == nil {
				sidecar, err := f.loadProducts(ctx, b.Options.Products)
				if err != nil {
					f.log.WarnContext(ctx, "catalog without product data", "batch_id", b.ID, "error", err.Error())
				}
				if cat, err = newCatalogWriter(sidecar); err != nil {
					return err
				}
			}
			return cat.add(ctx, out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("exports of %s: %w", b.ID, err)
	}
	var qt *quoteTally
	if reg != nil {
		if err := reg.set.putAll(ctx, out, b); err != nil {
			return nil, err
		}
		qt = reg.quotes
	}
	if cat != nil {
		if err := cat.set.putAll(ctx, out, b); err != nil {
			return nil, err
		}
	}
	return qt, nil
}
