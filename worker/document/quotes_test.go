package document_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// invented are quotes no contract of the corpus contains.
var invented = []string{
	"The Supplier shall pay the Customer one million unicorns on demand.",
	"This Agreement renews itself every leap second without notice.",
}

// quoteModel answers digests whose fact quotes are partly taken from the
// text in the prompt (with the page it is on) and partly invented; its
// second answer (to the request that names the quotes not found) is the
// same. Map answers carry real and invented quotes too; the reduce takes
// the quotes of the partial results as they are.
type quoteModel struct {
	prof  llm.Profile
	mu    sync.Mutex
	calls int
	notes []string
	real  []string // the real quotes answered
	docs  []string // the document text of each request
}

func (m *quoteModel) Profile() llm.Profile { return m.prof }

// partialQuoteRE finds a quote in a partial result (keys sorted: pages
// before quote).
var partialQuoteRE = regexp.MustCompile(`"pages":\[(\d+)[^\]]*\],"quote":"((?:[^"\\]|\\.)*)"`)

func (m *quoteModel) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	var doc string
	defer func() { m.docs = append(m.docs, doc) }()
	for _, p := range req.Parts {
		if p.Document {
			doc += p.Text
		} else if strings.Contains(p.Text, "not found word for word") {
			m.notes = append(m.notes, p.Text)
		}
	}
	type q struct {
		text string
		page int
	}
	var real []q
	if strings.Contains(doc, "Partial result") || strings.Contains(doc, "Partial digest") {
		for _, mm := range partialQuoteRE.FindAllStringSubmatch(doc, -1) {
			var s string
			_ = json.Unmarshal([]byte(`"`+mm[2]+`"`), &s)
			var page int
			fmt.Sscan(mm[1], &page)
			if !strings.Contains(s, "unicorns") && !strings.Contains(s, "leap second") {
				real = append(real, q{s, page})
			}
		}
	} else {
		for _, p := range prompts.SplitPages(doc) {
			words := strings.Fields(p.Text)
			if p.Page > 0 && len(words) > 30 {
				// Words 10-22 of the page, as the model would copy them.
				real = append(real, q{strings.Join(words[10:22], " "), p.Page})
			}
		}
	}
	if len(real) > 3 {
		real = real[:3]
	}
	fact := func(i int) map[string]any {
		if i < len(real) {
			m.real = append(m.real, real[i].text)
			return map[string]any{"value": "stated", "quote": real[i].text, "pages": []int{real[i].page}}
		}
		return map[string]any{"value": "", "quote": "", "pages": []int{}}
	}
	var out map[string]any
	switch req.Schema.Name {
	case prompts.SchemaChunkFacts:
		facts := []any{}
		for i := range real {
			f := fact(i)
			facts = append(facts, map[string]any{"fact": "a fact", "quote": f["quote"], "pages": f["pages"]})
		}
		facts = append(facts, map[string]any{"fact": "made up", "quote": invented[0], "pages": []int{1}})
		out = map[string]any{"facts": facts, "document_type_hint": "agreement"}
	case prompts.SchemaContractDigest:
		out = map[string]any{"document_type": "agreement",
			"parties":        []any{},
			"effective_date": fact(0), "key_dates": []any{}, "term": fact(1),
			"renewal":            map[string]any{"value": "yearly", "automatic": true, "notice": "90 days", "quote": invented[1], "pages": []int{1}},
			"termination_rights": fact(2), "payment_terms": map[string]any{"value": "unicorns", "quote": invented[0], "pages": []int{2}},
			"liability_caps": emptyFact(), "indemnities": emptyFact(), "confidentiality": emptyFact(), "governing_law_and_venue": emptyFact(),
			"obligations": []any{}, "risky_clauses": []any{}, "executive_summary": "An agreement."}
	default:
		return llm.Response{}, fmt.Errorf("unexpected schema %v", req.Schema)
	}
	b, _ := json.Marshal(out)
	return llm.Response{Text: string(b), Model: m.prof.Model, Usage: llm.Usage{InputTokens: 100, OutputTokens: 10}}, nil
}

// checkDigest asserts the real quotes verified and the invented ones are
// flagged, and returns the digest.
func checkDigest(t *testing.T, name string, doc map[string]any, md string) {
	t.Helper()
	for _, f := range []string{"effective_date", "term", "termination_rights"} {
		v := doc[f].(map[string]any)
		if v["quote"] == "" {
			t.Fatalf("%s: %s has no real quote: %v", name, f, v)
		}
		if v["verified"] != true || v["check"] != "found" || v["flagged"] != nil {
			t.Errorf("%s: real quote of %s not verified: %v", name, f, v)
		}
	}
	for _, f := range []string{"renewal", "payment_terms"} {
		v := doc[f].(map[string]any)
		if v["verified"] != false || v["flagged"] != true || v["check"] != "not_found" {
			t.Errorf("%s: invented quote of %s not flagged: %v", name, f, v)
		}
	}
	qc := doc["quote_check"].(map[string]any)
	if qc["quotes"] != 5.0 || qc["verified"] != 3.0 || qc["unverified"] != 2.0 || qc["asked_again"] != true || qc["schema"] != prompts.DigestSchemaVersion {
		t.Errorf("%s: quote_check %v", name, qc)
	}
	if !strings.Contains(md, "3 of 5 quotes found on their pages") || !strings.Contains(md, "⚠ not found on the cited pages") || !strings.Contains(md, "✓ found on the page") {
		t.Errorf("%s: summary.md does not show the checks:\n%s", name, md)
	}
}

func readDigest(t *testing.T, it document.Item, o stage.Outcome) (map[string]any, string) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readKey(t, it.Out, o.Results[0]), &doc); err != nil {
		t.Fatal(err)
	}
	return doc, string(readKey(t, it.Out, o.Results[1]))
}

func corpusContracts(t *testing.T) []string {
	dir := jobstest.CorpusDir(t, "pdfs", "contracts")
	files, err := filepath.Glob(filepath.Join(dir, "*.pdf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus contracts in %s: %v", dir, err)
	}
	return files
}

// TestQuotesAreCheckedAgainstTheirPages summarizes the corpus contracts in
// one request each: the quotes taken from the pages verify, the invented
// ones are asked for once more, then kept and flagged.
func TestQuotesAreCheckedAgainstTheirPages(t *testing.T) {
	s := document.New(document.Config{})
	defer s.Close()
	for _, file := range corpusContracts(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := &quoteModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 1 << 20, MaxOutputTokens: 4096}}
		it, _ := newItem(t, m, filepath.Base(file), jobs.FilePDF, data)
		o, maps, err := s.Summarize(context.Background(), it, data, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(maps) != 0 || m.calls != 2 || len(m.notes) != 1 {
			t.Fatalf("%s: %d maps, %d calls, %d notes: want one request and one more for the quotes not found", file, len(maps), m.calls, len(m.notes))
		}
		if !strings.Contains(m.notes[0], "unicorns") || !strings.Contains(m.notes[0], "leap second") {
			t.Errorf("the second request does not name the quotes not found: %s", m.notes[0])
		}
		doc, md := readDigest(t, it, o)
		checkDigest(t, filepath.Base(file), doc, md)
	}
}

// TestQuotesSurviveMapAndReduce maps a corpus contract in chunks: the map
// answers keep their pages' text, and the reduce's quotes (taken from the
// partial results) are checked against it.
func TestQuotesSurviveMapAndReduce(t *testing.T) {
	file := corpusContracts(t)[0]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := &quoteModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 6000, MaxOutputTokens: 1024}}
	it, _ := newItem(t, m, filepath.Base(file), jobs.FilePDF, data)
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	_, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) < 2 {
		t.Fatalf("%d chunks: want a long document", len(maps))
	}
	for _, mp := range maps {
		if err := s.Map(ctx, it, mp); err != nil {
			t.Fatal(err)
		}
	}
	var o stage.Outcome
	if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps), DocPages: maps[0].DocPages}, &o); err != nil {
		t.Fatal(err)
	}
	doc, md := readDigest(t, it, o)
	checkDigest(t, "reduced", doc, md)
}

// TestOfflineDigestsQuoteVerbatim: the offline provider's extractive
// digests of the corpus contracts quote the text as it is, so every quote
// is found on its pages.
func TestOfflineDigestsQuoteVerbatim(t *testing.T) {
	s := document.New(document.Config{})
	defer s.Close()
	model := offline.New(offline.Options{})
	for _, file := range corpusContracts(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		it, _ := newItem(t, model, filepath.Base(file), jobs.FilePDF, data)
		o, maps, err := s.Summarize(context.Background(), it, data, time.Now())
		if err != nil || len(maps) != 0 {
			t.Fatalf("%s: %d maps, %v", file, len(maps), err)
		}
		doc, _ := readDigest(t, it, o)
		qc := doc["quote_check"].(map[string]any)
		if qc["quotes"].(float64) < 4 || qc["verified"] != qc["quotes"] || qc["asked_again"] != false {
			t.Errorf("%s: offline quotes %v", filepath.Base(file), qc)
		}
	}
	// Mapped and reduced, too: the map facts quote their sentences and the
	// reduce keeps those quotes with their pages.
	file := corpusContracts(t)[0]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	small := offline.New(offline.Options{ContextTokens: 12000})
	it, _ := newItem(t, small, filepath.Base(file), jobs.FilePDF, data)
	ctx := context.Background()
	o, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil || len(maps) < 2 {
		t.Fatalf("%d maps, %v", len(maps), err)
	}
	for _, mp := range maps {
		if err := s.Map(ctx, it, mp); err != nil {
			t.Fatal(err)
		}
	}
	var ro stage.Outcome
	if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps), DocPages: o.Pages}, &ro); err != nil {
		t.Fatal(err)
	}
	doc, _ := readDigest(t, it, ro)
	if qc := doc["quote_check"].(map[string]any); qc["quotes"].(float64) < 4 || qc["verified"] != qc["quotes"] || qc["asked_again"] != false {
		t.Errorf("offline, mapped and reduced: %v", qc)
	}
}

// TestKeepTextWritesWhatTheModelSaw: with KeepText, the text the model was
// sent is written as <file>.text.md and cut into page-anchored chunks, in
// one request and after a map and reduce alike.
func TestKeepTextWritesWhatTheModelSaw(t *testing.T) {
	file := corpusContracts(t)[0]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	check := func(name string, it document.Item, o stage.Outcome, pages int) string {
		t.Helper()
		base := it.Payload.ResultBase
		if len(o.Results) != 4 || o.Results[2] != base+".text.md" || o.Results[3] != base+".chunks.jsonl" {
			t.Fatalf("%s: results %v", name, o.Results)
		}
		md := string(readKey(t, it.Out, o.Results[2]))
		seen := map[int]bool{}
		for l := range strings.Lines(string(readKey(t, it.Out, o.Results[3]))) {
			var c struct {
				ID, Source, Text string
				Page, Chunk      int
			}
			if err := json.Unmarshal([]byte(l), &c); err != nil {
				t.Fatal(err)
			}
			if c.Page < 1 || c.Text == "" || !strings.Contains(md, c.Text) || c.ID != fmt.Sprintf("%s#page=%d&chunk=%d", base, c.Page, c.Chunk) ||
				c.Source != it.Payload.Source.URL() || len([]rune(c.Text)) > 1200 {
				t.Errorf("%s: chunk %+v", name, c)
			}
			seen[c.Page] = true
		}
		for p := 1; p <= pages; p++ {
			if !strings.Contains(md, prompts.PageMarker(p)+"\n") {
				t.Errorf("%s: text.md has no marker of page %d", name, p)
			}
		}
		if len(seen) == 0 {
			t.Errorf("%s: no chunks", name)
		}
		return md
	}

	m := &quoteModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 1 << 20, MaxOutputTokens: 4096}}
	it, _ := newItem(t, m, filepath.Base(file), jobs.FilePDF, data)
	it.Payload.Options.KeepText = true
	o, _, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if md := check("one request", it, o, o.Pages); strings.TrimSpace(md) != strings.TrimSpace(m.docs[0]) {
		t.Errorf("text.md is not the text the model was sent")
	}

	m = &quoteModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 6000, MaxOutputTokens: 1024}}
	it, _ = newItem(t, m, filepath.Base(file), jobs.FilePDF, data)
	it.Payload.Options.KeepText = true
	o, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil || len(maps) < 2 {
		t.Fatalf("%d maps, %v", len(maps), err)
	}
	var sent strings.Builder
	for _, mp := range maps {
		if err := s.Map(ctx, it, mp); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range m.docs {
		sent.WriteString(d)
	}
	var ro stage.Outcome
	if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps), DocPages: o.Pages}, &ro); err != nil {
		t.Fatal(err)
	}
	md := check("map and reduce", it, ro, o.Pages)
	for _, p := range prompts.SplitPages(md) {
		if !strings.Contains(sent.String(), strings.TrimSpace(p.Text)) {
			t.Errorf("page %d of text.md was not sent to the model", p.Page)
		}
	}
}

// scanModel reads page images: its map facts quote what it "read" on the
// first page it was shown, and its digest takes the first partial quote.
type scanModel struct{ prof llm.Profile }

func (m *scanModel) Profile() llm.Profile { return m.prof }

var markerRE = regexp.MustCompile(`\[page (\d+)\]`)

func (m *scanModel) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	var doc string
	for _, p := range req.Parts {
		if p.Document {
			doc += p.Text
		}
	}
	var out map[string]any
	switch req.Schema.Name {
	case prompts.SchemaChunkFacts:
		page := 1
		if mm := markerRE.FindStringSubmatch(doc); mm != nil {
			fmt.Sscan(mm[1], &page)
		}
		out = map[string]any{"document_type_hint": "", "facts": []any{
			map[string]any{"fact": "the term", "quote": "read from the scanned page", "pages": []int{page}}}}
	case prompts.SchemaContractDigest:
		term := emptyFact()
		if mm := partialQuoteRE.FindStringSubmatch(doc); mm != nil {
			var page int
			fmt.Sscan(mm[1], &page)
			term = map[string]any{"value": "the term", "quote": "read from the scanned page", "pages": []int{page}}
		}
		out = map[string]any{"document_type": "agreement", "parties": []any{}, "effective_date": emptyFact(), "key_dates": []any{},
			"term": term, "renewal": map[string]any{"value": "", "automatic": false, "notice": "", "quote": "", "pages": []int{}},
			"termination_rights": emptyFact(), "payment_terms": emptyFact(), "liability_caps": emptyFact(), "indemnities": emptyFact(),
			"confidentiality": emptyFact(), "governing_law_and_venue": emptyFact(), "obligations": []any{}, "risky_clauses": []any{},
			"executive_summary": "A scanned agreement."}
	default:
		return llm.Response{}, fmt.Errorf("unexpected schema %v", req.Schema)
	}
	b, _ := json.Marshal(out)
	return llm.Response{Text: string(b), Model: m.prof.Model, Usage: llm.Usage{InputTokens: 100, OutputTokens: 10}}, nil
}

// TestQuotesFromScannedPagesAreUnverifiable: a scanned contract is read
// from page images; its quotes cite pages without text, so they are marked
// unverifiable (not flagged) and the model is not asked again.
func TestQuotesFromScannedPagesAreUnverifiable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t, "pdfs", "scanned"), "gen_contract_scanned150dpi.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	m := &scanModel{prof: llm.Profile{Provider: "openai", Model: "vision", ContextTokens: 1 << 17, MaxOutputTokens: 2048, MaxImages: 4}}
	it, _ := newItem(t, m, "scan.pdf", jobs.FilePDF, data)
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	o, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil || len(maps) == 0 {
		t.Fatalf("%d maps, %v: a scanned document is read from page images", len(maps), err)
	}
	for _, mp := range maps {
		if err := s.Map(ctx, it, mp); err != nil {
			t.Fatal(err)
		}
	}
	var ro stage.Outcome
	if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps), DocPages: o.Pages}, &ro); err != nil {
		t.Fatal(err)
	}
	doc, md := readDigest(t, it, ro)
	term := doc["term"].(map[string]any)
	if term["check"] != "unverifiable" || term["verified"] != false || term["flagged"] != nil {
		t.Errorf("quote from a scanned page: %v", term)
	}
	qc := doc["quote_check"].(map[string]any)
	if qc["unverifiable"] != 1.0 || qc["unverified"] != 0.0 || qc["asked_again"] != false {
		t.Errorf("quote_check %v", qc)
	}
	if !strings.Contains(md, "0 of 1 quotes found on their pages (1 on scanned pages, unverifiable)") {
		t.Errorf("summary.md:\n%s", md)
	}
}
