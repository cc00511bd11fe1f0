package stage_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// answers is a model that gives its answers in turn.
type answers struct {
	texts []string
	reqs  []llm.Request
}

func (a *answers) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	a.reqs = append(a.reqs, req)
	t := a.texts[0]
	a.texts = a.texts[1:]
	return llm.Response{Text: t, Model: "m", Usage: llm.Usage{InputTokens: 10, OutputTokens: 5}}, nil
}

const validFacts = `{"document_type_hint": "nda", "facts": [{"fact": "F.", "quote": "q", "pages": [1]}]}`

func newStore(t *testing.T) (storage.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, dir
}

func get(t *testing.T, st storage.Store, key string) string {
	t.Helper()
	rc, err := st.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestAskRepairsAsksAgainAndKeepsTheRawAnswer(t *testing.T) {
	tmpl, err := prompts.Set(nil).Load(prompts.SummaryMap)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := newStore(t)
	ctx := context.Background()
	req := llm.Request{Parts: []llm.Part{{Text: "map this"}}}

	m := &answers{texts: []string{"```json\n" + validFacts + "\n```"}}
	a, err := stage.Ask(ctx, m, tmpl, req, out, "x")
	if err != nil || a.Calls != 1 || a.Doc["document_type_hint"] != "nda" || m.reqs[0].Schema == nil {
		t.Fatalf("fenced answer not repaired: %+v, %v", a, err)
	}

	m = &answers{texts: []string{"no json here", validFacts}}
	a, err = stage.Ask(ctx, m, tmpl, req, out, "y")
	if err != nil || a.Calls != 2 || a.Usage.InputTokens != 20 {
		t.Fatalf("second request: %+v, %v", a, err)
	}
	if last := m.reqs[1].Parts[len(m.reqs[1].Parts)-1].Text; !strings.Contains(last, "could not be used") {
		t.Errorf("the second request does not say what was wrong: %q", last)
	}

	m = &answers{texts: []string{"nope", "still nope"}}
	_, err = stage.Ask(ctx, m, tmpl, req, out, "z")
	var pe *stage.PermanentError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "z.raw.txt") {
		t.Fatalf("invalid twice: %v, want a PermanentError naming the raw answer", err)
	}
	if raw := get(t, out, "z.raw.txt"); raw != "still nope" {
		t.Errorf("raw answer kept: %q", raw)
	}
}

func TestOutcomeAddAppliesTheBatchDiscount(t *testing.T) {
	prices := llm.Prices{InputPerMillion: 1_000_000, OutputPerMillion: 2_000_000, Currency: "USD", BatchDiscount: 0.5}
	var o stage.Outcome
	o.Add(stage.Answer{Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}, Model: "m"}, prices)
	o.Add(stage.Answer{Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}, Batch: true}, prices)
	if o.InputTokens != 2 || o.OutputTokens != 2 || o.Cost != 4.5 || o.Currency != "USD" || o.Model != "m" {
		t.Errorf("outcome %+v", o)
	}
}

func TestPutJSONAddsMeta(t *testing.T) {
	out, _ := newStore(t)
	p := jobs.ItemPayload{Batch: "b", Source: jobs.Ref{Location: "s3://bk", Key: "a.pdf", ETag: "e1"}, Fingerprint: "fp"}
	m := stage.NewMeta(p, "openai", "summary/1", stage.Outcome{Model: "m", InputTokens: 3}, 2, true, time.Unix(60, 0))
	if err := stage.PutJSON(context.Background(), out, "a.json", map[string]any{"k": "<v>"}, m); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(get(t, out, "a.json")), &doc); err != nil {
		t.Fatal(err)
	}
	meta, _ := doc["meta"].(map[string]any)
	if doc["k"] != "<v>" || meta["source"] != "s3://bk/a.pdf" || meta["created"] != "1970-01-01T00:01:00Z" ||
		meta["requests"] != 2.0 || meta["tokens_estimated"] != true || meta["fingerprint"] != "fp" {
		t.Errorf("written %v", doc)
	}
	if stage.Language(jobs.Options{}) != "en" || stage.Language(jobs.Options{Language: "de"}) != "de" {
		t.Error("Language")
	}
}

func TestReadRefusesChangedEmptyAndLargeObjects(t *testing.T) {
	st, dir := newStore(t)
	ctx := context.Background()
	for name, data := range map[string]string{"a.txt": "hello", "empty.txt": "", "big.txt": strings.Repeat("x", 100)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := st.Stat(ctx, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := stage.Read(ctx, st, jobs.Ref{Location: dir, Key: "a.txt", ETag: info.ETag}, 50); err != nil || string(b) != "hello" {
		t.Fatalf("read: %q, %v", b, err)
	}
	for _, ref := range []jobs.Ref{
		{Location: dir, Key: "a.txt", ETag: "other"},
		{Location: dir, Key: "empty.txt"},
		{Location: dir, Key: "big.txt"},
	} {
		var pe *stage.PermanentError
		if _, err := stage.Read(ctx, st, ref, 50); !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a PermanentError", ref.Key, err)
		}
	}
	if _, err := stage.Read(ctx, st, jobs.Ref{Location: dir, Key: "gone.txt"}, 50); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing object: %v, want ErrNotExist", err)
	}
}
