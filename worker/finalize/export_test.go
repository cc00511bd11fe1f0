package finalize

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// put writes a test object into the env's output.
func (e *realEnv) put(key, body string) {
	e.t.Helper()
	if err := e.out.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), ""); err != nil {
		e.t.Fatal(err)
	}
}

// run records entries in batch b and finalizes it.
func (e *realEnv) run(b jobs.Batch, entries []jobs.Entry) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.tracker.Create(ctx, b); err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		if _, _, err := e.tracker.Record(ctx, b.ID, en); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.tracker.Seal(ctx, b.ID, len(entries)); err != nil {
		e.t.Fatal(err)
	}
	task, err := jobs.NewFinalizeTask(b.ID, jobs.QueueDefault)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.fin.HandleFinalize(ctx, task); err != nil {
		e.t.Fatal(err)
	}
}

// readCSV checks a CSV export starts with the UTF-8 BOM and has one
// header row, and returns its records keyed by their first column.
func (e *realEnv) readCSV(key string, header []string) map[string][]string {
	e.t.Helper()
	body := e.read(key)
	if !strings.HasPrefix(body, "\ufeff") {
		e.t.Fatalf("%s does not start with the UTF-8 BOM", key)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\ufeff"))).ReadAll()
	if err != nil {
		e.t.Fatalf("%s: %v", key, err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(header, ",") {
		e.t.Fatalf("%s header %v", key, recs)
	}
	out := map[string][]string{}
	for _, r := range recs[1:] {
		if _, dup := out[r[0]]; dup {
			e.t.Errorf("%s: %s twice", key, r[0])
		}
		out[r[0]] = r
	}
	return out
}

func col(header []string, row []string, name string) string {
	for i, h := range header {
		if h == name {
			return row[i]
		}
	}
	return "(no column " + name + ")"
}

func digestJSON(parties, payment string, found, notFound int) string {
	var facts []string
	for i := range found {
		facts = append(facts, fmt.Sprintf(`{"obligation":"o%d","party":"","quote":"q","pages":[1],"verified":true,"check":"found"}`, i))
	}
	for i := range notFound {
		facts = append(facts, fmt.Sprintf(`{"obligation":"x%d","party":"","quote":"made up","pages":[2],"verified":false,"check":"not_found","flagged":true}`, i))
	}
	return `{"document_type":"agreement","parties":` + parties + `,
	"effective_date":{"value":"1 May 2024","quote":"q","pages":[1],"verified":true,"check":"found"},
	"term":{"value":"two years","quote":"q","pages":[1],"verified":true,"check":"found"},
	"renewal":{"value":"renews yearly","automatic":true,"notice":"90 days","quote":"q","pages":[1],"verified":true,"check":"found"},
	"termination_rights":{"value":"","quote":"","pages":[]},
	"payment_terms":{"value":` + payment + `,"quote":"q","pages":[1],"verified":true,"check":"found"},
	"liability_caps":{"value":"fees paid in 12 months","quote":"q","pages":[3],"verified":true,"check":"found"},
	"governing_law_and_venue":{"value":"New York","quote":"q","pages":[4],"verified":true,"check":"found"},
	"obligations":[` + strings.Join(facts, ",") + `],
	"risky_clauses":[{"clause":"c","quote":"q","pages":[2],"verified":true,"check":"found"},{"clause":"d","quote":"q","pages":[2],"verified":true,"check":"found"}],
	"executive_summary":"x","meta":{"model":"m"}}`
}

// TestRegisterRowsMatchTheDigests: one register row per done document
// with its digest's fields, the failed and skipped ones listed apart with
// their reasons, a CSV a spreadsheet reads (BOM, quoting, one header), the
// JSONL alike, copies at the root, and the quote counts in report.md with
// the documents whose quotes were not found first.
func TestRegisterRowsMatchTheDigests(t *testing.T) {
	e := newRealEnv(t)
	b := jobs.Batch{ID: "b-reg", Created: created, Spec: jobs.Spec{Out: "file:///out", Task: jobs.TaskSummarize, Queue: jobs.QueueDefault}}
	docs := map[string]string{
		"a.pdf": digestJSON(`[{"name":"Acme, Inc.","role":"licensor","quote":"q","pages":[1]},{"name":"Bétà \"GmbH\"","role":"licensee","quote":"q","pages":[1]}]`, `"=SUM(A1) € 1,000\nnet 30"`, 3, 0),
		"b.pdf": digestJSON(`[]`, `"net 60"`, 1, 2),
		"c.pdf": digestJSON(`[]`, `"net 90"`, 0, 5),
	}
	var entries []jobs.Entry
	for name, body := range docs {
		e.put(name+".summary.json", body)
		entries = append(entries, jobs.Entry{Item: "i-" + name, Source: "/in/" + name, Key: name, Kind: jobs.KindDocument, Status: jobs.StatusDone,
			Pages: 4, Results: []string{name + ".summary.json", name + ".summary.md"}})
	}
	entries = append(entries,
		jobs.Entry{Item: "i-bad", Source: "/in/bad.pdf", Key: "bad.pdf", Kind: jobs.KindDocument, Status: jobs.StatusFailed, Error: "encrypted: a password is required", Attempts: 1},
		jobs.Entry{Item: "i-big", Source: "/in/big.pdf", Key: "big.pdf", Kind: jobs.KindDocument, Status: jobs.StatusSkipped, Error: "over --max-size"})
	e.run(b, entries)

	rows := e.readCSV("batches/b-reg/register.csv", registerHeader)
	if len(rows) != len(docs) {
		t.Fatalf("%d register rows for %d done documents", len(rows), len(docs))
	}
	a := rows["/in/a.pdf"]
	want := map[string]string{"document_type": "agreement", "parties": `Acme, Inc. (licensor); Bétà "GmbH" (licensee)`,
		"effective_date": "1 May 2024", "term": "two years", "renewal": "renews yearly", "auto_renewal": "yes", "renewal_notice": "90 days",
		"payment_terms": "'=SUM(A1) € 1,000\nnet 30", "liability_cap": "fees paid in 12 months", "governing_law_and_venue": "New York",
		"risky_clauses": "2", "quotes": "11 of 11 quotes found on their pages", "quotes_found": "11", "quotes_total": "11", "quotes_not_found": "0",
		"pages": "4", "summary_json": "a.pdf.summary.json", "summary_md": "a.pdf.summary.md", "key": "a.pdf", "termination": ""}
	for k, v := range want {
		if got := col(registerHeader, a, k); got != v {
			t.Errorf("a.pdf %s = %q, want %q", k, got, v)
		}
	}
	if got := col(registerHeader, rows["/in/c.pdf"], "quotes"); got != "8 of 13 quotes found on their pages" {
		t.Errorf("c.pdf quotes %q", got)
	}
	failed := e.readCSV("batches/b-reg/register_failed.csv", failedHeader)
	if len(failed) != 2 || failed["/in/bad.pdf"][3] != "encrypted: a password is required" || failed["/in/big.pdf"][2] != "skipped" {
		t.Errorf("failed list %v", failed)
	}
	// JSONL: one line per done document, the same rows.
	lines := strings.Split(strings.TrimSpace(e.read("batches/b-reg/register.jsonl")), "\n")
	if len(lines) != len(docs) {
		t.Fatalf("%d JSONL lines", len(lines))
	}
	for _, l := range lines {
		var r registerRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if strings.Join(r.cells(), "|") != strings.Join(rows[r.Source], "|") && r.Source != "/in/a.pdf" { // a.pdf's CSV cell is made formula-safe
			t.Errorf("JSONL row %s differs from the CSV's", r.Source)
		}
	}
	for _, name := range []string{RegisterCSV, RegisterJSONL, RegisterFailedCSV} {
		if e.read(name) != e.read("batches/b-reg/"+name) {
			t.Errorf("root %s is not the batch's", name)
		}
	}
	report := e.read("batches/b-reg/report.md")
	i, j, k := strings.Index(report, "8 of 13"), strings.Index(report, "- /in/c.pdf: 5 not found"), strings.Index(report, "- /in/b.pdf: 2 not found")
	if !strings.Contains(report, "28 of 35 quotes found on their pages in 3 documents") || i < 0 || j < 0 || k < j ||
		strings.Contains(report, "- /in/a.pdf") {
		t.Errorf("report does not list the documents with quotes not found first:\n%s", report)
	}
}

func captionJSON(title, alt string, blurry bool, dupOf string) string {
	meta := `{"model":"m"}`
	if dupOf != "" {
		meta = `{"model":"m","duplicate_of":"` + dupOf + `"}`
	}
	return fmt.Sprintf(`{"alt_text":%q,"caption":"A mug.","title":%q,"category":"mug","colors":["white","blue"],"material":"ceramic",
	"attributes":{},"tags":["mug","kitchen"],"visible_text":"","quality":{"blurry":%v,"background_not_white":true,"watermark":false,"multiple_products":false,"contains_person":false},"meta":%s}`,
		alt, title, blurry, meta)
}

// TestCatalogRowsMatchTheCaptions: one catalog row per done image with
// its caption's fields and its product from the sidecar, failed images
// apart, and a Shopify image CSV for the products with a handle.
func TestCatalogRowsMatchTheCaptions(t *testing.T) {
	e := newRealEnv(t)
	dir := t.TempDir()
	e.fin.open = func(_ context.Context, loc string) (storage.Store, error) {
		if loc == dir {
			return localstore.Open(dir)
		}
		return e.out, nil
	}
	sidecar := "key,sku,name,handle,image_src\n" +
		"mug-front.jpg,SKU-1,\"Mug, blue\",blue-mug,https://cdn.example.com/mug-front.jpg\n" +
		"mug-back.jpg,SKU-1,\"Mug, blue\",blue-mug,\n" +
		"plate.jpg,SKU-2,Plate,,\n"
	if err := os.WriteFile(filepath.Join(dir, "products.csv"), []byte(sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	b := jobs.Batch{ID: "b-cat", Created: created, Spec: jobs.Spec{Out: "file:///out", Task: jobs.TaskCaption, Queue: jobs.QueueDefault,
		Options: jobs.Options{Products: dir + "/products.csv"}}}
	caps := map[string]string{
		"mug-front.jpg": captionJSON("Blue mug", "Blue ceramic mug, front", false, ""),
		"mug-back.jpg":  captionJSON("Blue mug", "Blue ceramic mug, back", true, "/in/mug-copy.jpg"),
		"plate.jpg":     captionJSON("Plate", "White plate", false, ""),
		"other.jpg":     captionJSON("Thing", "=cmd|' /C calc'!A0", false, ""),
	}
	var entries []jobs.Entry
	for _, k := range []string{"mug-front.jpg", "mug-back.jpg", "plate.jpg", "other.jpg"} {
		e.put(k+".caption.json", caps[k])
		entries = append(entries, jobs.Entry{Item: "i-" + k, Source: "/in/" + k, Key: k, Kind: jobs.KindImage, Status: jobs.StatusDone,
			Results: []string{k + ".caption.json"}})
	}
	entries = append(entries, jobs.Entry{Item: "i-broken", Source: "/in/broken.jpg", Key: "broken.jpg", Kind: jobs.KindImage,
		Status: jobs.StatusFailed, Error: "corrupt image: unexpected EOF"})
	e.run(b, entries)

	rows := e.readCSV("batches/b-cat/catalog.csv", catalogHeader)
	if len(rows) != len(caps) {
		t.Fatalf("%d catalog rows for %d captions", len(rows), len(caps))
	}
	back := rows["mug-back.jpg"]
	for k, v := range map[string]string{"source": "/in/mug-back.jpg", "sku": "SKU-1", "name": "Mug, blue", "handle": "blue-mug",
		"title": "Blue mug", "alt_text": "Blue ceramic mug, back", "tags": "mug; kitchen", "colors": "white; blue", "material": "ceramic",
		"quality_flags": "background_not_white; blurry", "duplicate_of": "/in/mug-copy.jpg", "caption_json": "mug-back.jpg.caption.json"} {
		if got := col(catalogHeader, back, k); got != v {
			t.Errorf("mug-back %s = %q, want %q", k, got, v)
		}
	}
	if got := col(catalogHeader, rows["other.jpg"], "alt_text"); got != "'=cmd|' /C calc'!A0" {
		t.Errorf("a formula in a cell is not defused: %q", got)
	}
	if col(catalogHeader, rows["other.jpg"], "sku") != "" || col(catalogHeader, rows["plate.jpg"], "sku") != "SKU-2" {
		t.Error("products not matched by key")
	}
	var n int
	for l := range strings.Lines(e.read("batches/b-cat/catalog.jsonl")) {
		var r catalogRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if _, ok := rows[r.Key]; !ok || r.AltText == "" {
			t.Errorf("JSONL row %+v", r)
		}
		n++
	}
	if n != len(caps) {
		t.Errorf("%d JSONL rows", n)
	}
	failed := e.readCSV("batches/b-cat/catalog_failed.csv", failedHeader)
	if len(failed) != 1 || failed["/in/broken.jpg"][3] != "corrupt image: unexpected EOF" {
		t.Errorf("failed list %v", failed)
	}
	// Both mug images share one handle, a row each; the plate has none.
	shop := e.read("batches/b-cat/catalog_shopify.csv")
	recs, _ := csv.NewReader(strings.NewReader(strings.TrimPrefix(shop, "\ufeff"))).ReadAll()
	if !strings.HasPrefix(shop, "\ufeff") || len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(shopifyHeader, ",") {
		t.Fatalf("shopify rows %v", recs)
	}
	got := map[string][]string{}
	for _, r := range recs[1:] {
		got[r[3]] = r
	}
	if r := got["Blue ceramic mug, front"]; r == nil || r[0] != "blue-mug" || r[1] != "https://cdn.example.com/mug-front.jpg" {
		t.Errorf("front image row %v", r)
	}
	if r := got["Blue ceramic mug, back"]; r == nil || r[1] != "/in/mug-back.jpg" {
		t.Errorf("back image row %v", r)
	}
	if p1, p2 := got["Blue ceramic mug, front"][2], got["Blue ceramic mug, back"][2]; p1 == p2 || (p1 != "1" && p1 != "2") || (p2 != "1" && p2 != "2") {
		t.Errorf("image positions %s, %s: want 1 and 2", p1, p2)
	}
	if e.read(CatalogCSV) != e.read("batches/b-cat/catalog.csv") {
		t.Error("root catalog.csv is not the batch's")
	}
	if _, err := e.out.Stat(context.Background(), "batches/b-cat/register.csv"); err == nil {
		t.Error("a caption batch got a register")
	}
}
