package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// The results view: /batches/{id}/results shows a batch's results a page
// at a time (captioned images as a gallery, summarized documents as a list
// with their quote checks), /batches/{id}/doc?item= one digest with each
// field, its quotes, their pages and whether they were found there, and
// /batches/{id}/image?item= an image for the gallery's thumbnails. Results
// are read through Config.Open (the storage interface: local or S3), one
// page's worth at a time; every route is behind the dashboard's
// credentials.

// Opener opens a storage location (storage/backends.Open).
type Opener func(ctx context.Context, location string) (storage.Store, error)

// resultsPageSize is how many results one page shows.
const resultsPageSize = 24

// maxResultBytes and maxImageBytes cap what one result or image read may
// take.
const (
	maxResultBytes = 16 << 20
	maxImageBytes  = 32 << 20
)

// entryGetter reads one entry by item ID (*jobs.Tracker has it); without
// it the batch's entries are scanned.
type entryGetter interface {
	Entry(ctx context.Context, batch, item string) (jobs.Entry, bool, error)
}

var _ entryGetter = (*jobs.Tracker)(nil)

// results serves the results view.
type results struct {
	p                 *pages
	open              Opener
	listTmpl, docTmpl *template.Template
}

func newResults(p *pages, open Opener) (*results, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.New("layout.html").Funcs(template.FuncMap{"join": strings.Join}).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		return t, nil
	}
	rs := &results{p: p, open: open}
	var err error
	if rs.listTmpl, err = parse("results.html"); err != nil {
		return nil, err
	}
	rs.docTmpl, err = parse("digest.html")
	return rs, err
}

// ImageCard is one captioned image in the gallery.
type ImageCard struct {
	Item, Source, Key, Thumb string
	Title, AltText           string
	Tags, Flags              []string
	DuplicateOf              string
	Error                    string
}

// DocRow is one summarized document in the results list.
type DocRow struct {
	Item, Source, Link string
	DocumentType       string
	Quotes             string
	NotFound           int
	Error              string
}

func (rs *results) list(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	v, ok := rs.batch(w, r, id)
	if !ok {
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	first := (page - 1) * resultsPageSize
	var window []jobs.Entry
	total := 0
	if err := rs.p.tracker.EachEntry(ctx, id, func(e jobs.Entry) error {
		if e.Status != jobs.StatusDone || (e.Kind != jobs.KindImage && e.Kind != jobs.KindDocument) {
			return nil
		}
		if total >= first && total < first+resultsPageSize {
			window = append(window, e)
		}
		total++
		return nil
	}); err != nil {
		rs.p.fail(w, "batch entries", err)
		return
	}
	sort.Slice(window, func(i, j int) bool { return window[i].Source < window[j].Source })
	out, err := rs.open(ctx, v.Out)
	if err != nil {
		rs.p.fail(w, "open output", err)
		return
	}
	data := struct {
		Title       string
		Session     Session
		Refresh     bool
		Batch       BatchView
		Images      []ImageCard
		Docs        []DocRow
		Page, Pages int
		Prev, Next  string
		Total       int
	}{Title: "Results of batch " + id, Session: sessionOf(ctx), Batch: v, Page: page, Total: total, Pages: max(1, (total+resultsPageSize-1)/resultsPageSize)}
	base := "/batches/" + url.PathEscape(id)
	for _, e := range window {
		if e.Kind == jobs.KindImage {
			data.Images = append(data.Images, imageCard(ctx, out, base, e))
		} else {
			data.Docs = append(data.Docs, docRow(ctx, out, base, e))
		}
	}
	if page > 1 {
		data.Prev = fmt.Sprintf("%s/results?page=%d", base, page-1)
	}
	if page < data.Pages {
		data.Next = fmt.Sprintf("%s/results?page=%d", base, page+1)
	}
	rs.p.render(w, rs.listTmpl, data)
}

// batch reads the batch's view, answering 404 or 410 itself.
func (rs *results) batch(w http.ResponseWriter, r *http.Request, id string) (BatchView, bool) {
	v, err := rs.p.view(r.Context(), id)
	switch {
	case jobs.Gone(err) != nil:
		http.Error(w, goneText(jobs.Gone(err)), http.StatusGone)
	case errors.Is(err, jobs.ErrNoBatch):
		http.Error(w, "no such batch", http.StatusNotFound)
	case err != nil:
		rs.p.fail(w, "batch", err)
	default:
		return v, true
	}
	return v, false
}

// entry finds the batch's done entry of item.
func (rs *results) entry(ctx context.Context, batch, item string) (jobs.Entry, bool, error) {
	if g, ok := rs.p.tracker.(entryGetter); ok {
		return g.Entry(ctx, batch, item)
	}
	var found jobs.Entry
	var ok bool
	errFound := errors.New("found")
	err := rs.p.tracker.EachEntry(ctx, batch, func(e jobs.Entry) error {
		if e.Item == item {
			found, ok = e, true
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return found, false, err
	}
	return found, ok, nil
}

func readJSON(ctx context.Context, st storage.Store, key string) (map[string]any, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(rc, maxResultBytes)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return doc, nil
}

func resultOf(e jobs.Entry, suffix string) string {
	for _, k := range e.Results {
		if strings.HasSuffix(k, suffix) {
			return k
		}
	}
	return ""
}

func imageCard(ctx context.Context, out storage.Store, base string, e jobs.Entry) ImageCard {
	c := ImageCard{Item: e.Item, Source: e.Source, Key: e.Key, Thumb: base + "/image?item=" + url.QueryEscape(e.Item)}
	doc, err := readJSON(ctx, out, resultOf(e, jobs.SuffixCaptionJSON))
	if err != nil {
		c.Error = "caption not readable"
		return c
	}
	c.Title, c.AltText = str(doc["title"]), str(doc["alt_text"])
	c.Tags = strList(doc["tags"])
	if q, ok := doc["quality"].(map[string]any); ok {
		for k, v := range q {
			if v == true {
				c.Flags = append(c.Flags, strings.ReplaceAll(k, "_", " "))
			}
		}
		sort.Strings(c.Flags)
	}
	if m, ok := doc["meta"].(map[string]any); ok {
		c.DuplicateOf = str(m["duplicate_of"])
	}
	return c
}

func docRow(ctx context.Context, out storage.Store, base string, e jobs.Entry) DocRow {
	d := DocRow{Item: e.Item, Source: e.Source, Link: base + "/doc?item=" + url.QueryEscape(e.Item)}
	doc, err := readJSON(ctx, out, resultOf(e, jobs.SuffixSummaryJSON))
	if err != nil {
		d.Error = "digest not readable"
		return d
	}
	d.DocumentType = str(doc["document_type"])
	if qc, ok := doc["quote_check"].(map[string]any); ok {
		d.Quotes = str(qc["summary"])
		if n, ok := qc["unverified"].(float64); ok {
			d.NotFound = int(n)
		}
	}
	return d
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return strings.TrimSpace(s)
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func strList(v any) []string {
	var out []string
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if s := str(e); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// image serves a done image item's thumbnail for the gallery: the source
// scaled to fit thumbSide (so a page of 24 photos is not 24 full-size
// downloads), or the source bytes as they are when they are small already
// or in a format only the browser decodes (AVIF), when they sniff as an
// image.
func (rs *results) image(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, item := r.PathValue("id"), r.URL.Query().Get("item")
	if s := sessionOf(ctx); !s.AllTenants() {
		if b, err := rs.p.tracker.Get(ctx, id); err != nil || !s.sees(b) {
			http.Error(w, "no such image in this batch", http.StatusNotFound)
			return
		}
	}
	e, ok, err := rs.entry(ctx, id, item)
	if err != nil {
		rs.p.fail(w, "entry", err)
		return
	}
	if !ok || e.Kind != jobs.KindImage || e.Key == "" || !strings.HasSuffix(e.Source, e.Key) {
		http.Error(w, "no such image in this batch", http.StatusNotFound)
		return
	}
	loc := strings.TrimSuffix(strings.TrimSuffix(e.Source, e.Key), "/")
	st, err := rs.open(ctx, loc)
	if err != nil {
		rs.p.fail(w, "open source", err)
		return
	}
	rc, err := st.Get(ctx, e.Key, nil)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "the image is no longer in its source", http.StatusNotFound)
		return
	}
	if err != nil {
		rs.p.fail(w, "read image", err)
		return
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxImageBytes+1))
	if err != nil {
		rs.p.fail(w, "read image", err)
		return
	}
	ctype := http.DetectContentType(b)
	if len(b) > maxImageBytes || !strings.HasPrefix(ctype, "image/") {
		http.Error(w, "not an image this page shows", http.StatusUnsupportedMediaType)
		return
	}
	if t, tctype, ok := thumbnail(b); ok {
		b, ctype = t, tctype
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(b)
}
