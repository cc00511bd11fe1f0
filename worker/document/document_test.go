package document_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// fakeModel answers map, reduce and summary prompts with schema-valid
// JSON (a field the schemas do not forbid) and counts its calls.
type fakeModel struct {
	prof  llm.Profile
	mu    sync.Mutex
	calls int
}

func (m *fakeModel) Profile() llm.Profile { return m.prof }

func (m *fakeModel) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	m.mu.Lock()
	m.calls++
	m.mu.Unlock()
	var doc map[string]any
	switch req.Schema.Name {
	case "chunk_facts":
		doc = map[string]any{"document_type_hint": "supply agreement",
			"facts": []any{map[string]any{"fact": "The supplier delivers.", "quote": "shall deliver", "pages": []int{1}}}}
	case "contract_digest":
		doc = map[string]any{"document_type": "supply agreement", "parties": []any{}, "effective_date": emptyFact(), "key_dates": []any{}, "term": emptyFact(),
			"renewal":            map[string]any{"value": "", "automatic": false, "notice": "", "quote": "", "pages": []int{}},
			"termination_rights": emptyFact(), "payment_terms": emptyFact(), "liability_caps": emptyFact(), "indemnities": emptyFact(),
			"confidentiality": emptyFact(), "governing_law_and_venue": emptyFact(), "obligations": []any{}, "risky_clauses": []any{},
			"executive_summary": "A supply agreement."}
	default:
		return llm.Response{}, fmt.Errorf("unexpected schema %v", req.Schema)
	}
	b, _ := json.Marshal(doc)
	return llm.Response{Text: string(b), Model: m.prof.Model, Usage: llm.Usage{InputTokens: 100, OutputTokens: 10}}, nil
}

// report records progress and never stops the item.
type report struct {
	mu     sync.Mutex
	stages []string
}

func (r *report) Progress(_ context.Context, stage string, done, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stages = append(r.stages, fmt.Sprintf("%s %d/%d", stage, done, total))
}

func (r *report) Stopped(context.Context) error { return nil }

func newItem(t testing.TB, model document.Model, key string, typ jobs.FileType, data []byte) (document.Item, storage.Store) {
	t.Helper()
	dir := t.TempDir()
	out, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	p := jobs.ItemPayload{Batch: "b1", Item: jobs.ItemID("src", key), Source: jobs.Ref{Location: "src", Key: key},
		Type: typ, Kind: jobs.KindDocument, Task: jobs.TaskSummarize, Out: dir, ResultBase: key}
	return document.Item{Payload: p, Out: out, Model: model, Log: slog.New(slog.DiscardHandler), Report: &report{},
		ReadSource: func(context.Context) ([]byte, error) { return data, nil }}, out
}

func readKey(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestShortDocumentIsSummarizedInOneRequest(t *testing.T) {
	m := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 32768, MaxOutputTokens: 1024}}
	data := []byte("The supplier shall deliver 10 units within thirty days.\n")
	it, out := newItem(t, m, "short.txt", "txt", data)
	s := document.New(document.Config{Now: func() time.Time { return time.Unix(0, 0) }})
	defer s.Close()
	o, maps, err := s.Summarize(context.Background(), it, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o.Continued || len(maps) != 0 || m.calls != 1 {
		t.Fatalf("continued %v, %d maps, %d calls: want one request", o.Continued, len(maps), m.calls)
	}
	if len(o.Results) != 2 || o.InputTokens != 100 {
		t.Fatalf("outcome %+v", o)
	}
	var doc map[string]any
	if err := json.Unmarshal(readKey(t, out, o.Results[0]), &doc); err != nil {
		t.Fatal(err)
	}
	if meta, _ := doc["meta"].(map[string]any); meta["created"] != "1970-01-01T00:00:00Z" || meta["provider"] != "openai" {
		t.Errorf("meta %v", doc["meta"])
	}
	if md := string(readKey(t, out, o.Results[1])); !strings.Contains(md, "## Executive summary") {
		t.Errorf("digest markdown:\n%s", md)
	}
}

// TestLongDocumentIsMappedAndReduced drives the stage as the worker does:
// Summarize plans and writes chunks, Map maps each (once), Reduce writes
// the digest, RemoveWork clears the work prefix.
func TestLongDocumentIsMappedAndReduced(t *testing.T) {
	m := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 4096, MaxOutputTokens: 1024}}
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "Clause %d. The supplier shall deliver %d conforming units to the buyer within thirty days of each order.\n\n", i+1, 10*i+5)
	}
	data := []byte(sb.String())
	it, out := newItem(t, m, "long.txt", "txt", data)
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	o, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !o.Continued || len(maps) < 3 || o.Chunks != len(maps) || m.calls != 0 {
		t.Fatalf("continued %v, %d maps, chunks %d, %d calls", o.Continued, len(maps), o.Chunks, m.calls)
	}
	for i, mp := range maps {
		if mp.Index != i+1 || mp.Count != len(maps) || mp.Chunk == "" {
			t.Fatalf("map %d: %+v", i, mp)
		}
		for range 2 { // a duplicate delivery does not ask again
			if err := s.Map(ctx, it, mp); err != nil {
				t.Fatal(err)
			}
		}
	}
	if m.calls != len(maps) {
		t.Fatalf("%d calls for %d chunks", m.calls, len(maps))
	}
	var ro stage.Outcome
	if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps)}, &ro); err != nil {
		t.Fatal(err)
	}
	if len(ro.Results) != 2 || ro.InputTokens != 100*m.calls {
		t.Fatalf("reduce outcome %+v after %d calls", ro, m.calls)
	}
	if err := document.RemoveWork(ctx, out, it.Payload); err != nil {
		t.Fatal(err)
	}
	for info, err := range out.List(ctx, workarea.WorkPrefix(it.Payload.Batch, it.Payload.Item), storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("work object left: %s", info.Key)
	}
}

func TestBlankAndUnsupportedDocumentsFailForGood(t *testing.T) {
	m := &fakeModel{prof: llm.Profile{Model: "m", ContextTokens: 32768}}
	s := document.New(document.Config{})
	defer s.Close()
	for _, c := range []struct{ key, typ, data string }{
		{"blank.txt", "txt", "   \n\n"},
		{"x.odt", "odt", "whatever"},
	} {
		it, _ := newItem(t, m, c.key, jobs.FileType(c.typ), []byte(c.data))
		_, _, err := s.Summarize(context.Background(), it, []byte(c.data), time.Now())
		var pe *stage.PermanentError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a PermanentError", c.key, err)
		}
	}
}

func TestScannedPDFWithoutImageModelFailsWithAReason(t *testing.T) {
	dir := jobstest.CorpusDir(t, "pdfs", "scanned")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeModel{prof: llm.Profile{Model: "text-only", ContextTokens: 32768}}
	s := document.New(document.Config{})
	defer s.Close()
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pdf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		it, _ := newItem(t, m, e.Name(), "pdf", data)
		_, _, err = s.Summarize(context.Background(), it, data, time.Now())
		if err == nil {
			continue // a scanned PDF may carry some text
		}
		var pe *stage.PermanentError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a PermanentError", e.Name(), err)
		}
		return
	}
}

func TestTextBudget(t *testing.T) {
	for _, c := range []struct {
		prof   llm.Profile
		maxOut int
		want   int
	}{
		{llm.Profile{ContextTokens: 32768, MaxOutputTokens: 8192}, 0, 32768 - 4096 - 2048},
		{llm.Profile{ContextTokens: 32768, MaxOutputTokens: 1024}, 0, 32768 - 1024 - 2048},
		{llm.Profile{ContextTokens: 32768}, 1000, 32768 - 1000 - 2048},
		{llm.Profile{}, 0, 8192 - 2048},
		{llm.Profile{ContextTokens: 1000}, 0, 512},
	} {
		if got := document.TextBudget(c.prof, c.maxOut); got != c.want {
			t.Errorf("TextBudget(%+v, %d) = %d, want %d", c.prof, c.maxOut, got, c.want)
		}
	}
}

// emptyFact is a contract_digest fact the document does not state.
func emptyFact() map[string]any { return map[string]any{"value": "", "quote": "", "pages": []int{}} }
