package dashboard

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/llamapipe/llamapipe/prompts"
)

// evidenceKeys are a fact's quote and its check (shown apart from its
// statement).
var evidenceKeys = map[string]bool{"quote": true, "pages": true, "verified": true, "check": true, "flagged": true}

// FactView is one statement of a digest with its evidence.
type FactView struct {
	// Text is what the fact states ("name (role)", "value", …).
	Text  string
	Quote string
	Pages string
	// Check is found, not_found, missing or unverifiable (empty: the fact
	// has no quote object); Verified is true when found.
	Check    string
	Verified bool
	Flagged  bool
}

// FieldView is one field of a digest: plain text, or facts with quotes.
type FieldView struct {
	Name  string
	Text  string
	Facts []FactView
}

func fieldName(k string) string {
	s := strings.ReplaceAll(k, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// factView reads one quote object.
func factView(m map[string]any) FactView {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !evidenceKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	if v := str(m["value"]); v != "" {
		parts = append(parts, v)
	}
	for _, k := range keys {
		if k == "value" {
			continue
		}
		switch v := m[k].(type) {
		case bool:
			if v {
				parts = append(parts, fieldName(k))
			}
		default:
			if s := str(v); s != "" {
				parts = append(parts, fieldName(k)+": "+s)
			}
		}
	}
	var pages []string
	if ps, ok := m["pages"].([]any); ok {
		for _, p := range ps {
			pages = append(pages, str(p))
		}
	}
	f := FactView{Text: strings.Join(parts, " · "), Quote: str(m["quote"]), Pages: strings.Join(pages, ", "), Check: str(m["check"])}
	f.Verified, _ = m["verified"].(bool)
	f.Flagged, _ = m["flagged"].(bool)
	return f
}

// fieldView reads one digest field; ok is false for a field the document
// does not cover.
func fieldView(k string, v any) (FieldView, bool) {
	fv := FieldView{Name: fieldName(k)}
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t["quote"]; !ok {
			return fv, false
		}
		f := factView(t)
		if f.Text == "" && f.Quote == "" {
			return fv, false
		}
		fv.Facts = []FactView{f}
	case []any:
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				fv.Facts = append(fv.Facts, factView(m))
			} else if s := str(e); s != "" {
				fv.Facts = append(fv.Facts, FactView{Text: s})
			}
		}
		if len(fv.Facts) == 0 {
			return fv, false
		}
	default:
		fv.Text = str(v)
		if fv.Text == "" {
			return fv, false
		}
	}
	return fv, true
}

// doc shows one document's digest: each field, its quotes, their pages and
// whether they were found there.
func (rs *results) doc(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, item := r.PathValue("id"), r.URL.Query().Get("item")
	v, ok := rs.batch(w, r, id)
	if !ok {
		return
	}
	e, ok, err := rs.entry(ctx, id, item)
	if err != nil {
		rs.p.fail(w, "entry", err)
		return
	}
	key := resultOf(e, ".summary.json")
	if !ok || key == "" {
		http.Error(w, "no digest of this item in this batch", http.StatusNotFound)
		return
	}
	out, err := rs.open(ctx, v.Out)
	if err != nil {
		rs.p.fail(w, "open output", err)
		return
	}
	doc, err := readJSON(ctx, out, key)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "the digest is no longer in the output", http.StatusNotFound)
		return
	}
	if err != nil {
		rs.p.fail(w, "read digest", err)
		return
	}
	data := struct {
		Title, Source, Back, Quotes string
		Session                     Session
		Refresh                     bool
		NotFound                    int
		Fields                      []FieldView
	}{Title: "Digest of " + e.Source, Session: sessionOf(ctx), Source: e.Source, Back: "/batches/" + url.PathEscape(id) + "/results"}
	if qc, ok := doc["quote_check"].(map[string]any); ok {
		data.Quotes = str(qc["summary"])
		if n, ok := qc["unverified"].(float64); ok {
			data.NotFound = int(n)
		}
	}
	for _, k := range prompts.OrderedFields(doc, "meta", "quote_check") {
		if fv, ok := fieldView(k, doc[k]); ok {
			data.Fields = append(data.Fields, fv)
		}
	}
	if len(data.Fields) == 0 {
		rs.p.fail(w, "digest", fmt.Errorf("digest %s has no fields", key))
		return
	}
	rs.p.render(w, rs.docTmpl, data)
}
