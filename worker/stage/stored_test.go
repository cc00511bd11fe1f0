package stage_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// StoredAnswer gives back the answer a result of this batch and source
// version holds, with its tokens priced, and nothing for any other result.
func TestStoredAnswer(t *testing.T) {
	st, _ := newStore(t)
	ctx := t.Context()
	p := jobs.ItemPayload{Batch: "b1", Item: "i1", Source: jobs.Ref{Location: "/in", Key: "a.txt", ETag: "e1"}, ResultBase: "a.txt", Task: jobs.TaskSummarize}
	prices := llm.Prices{InputPerMillion: 1_000_000, OutputPerMillion: 2_000_000, Currency: "USD"}
	o := stage.Outcome{InputTokens: 30, OutputTokens: 7, Model: "m1"}
	doc := map[string]any{"title": "Lease", "parties": []any{"A", "B"}, "rent": json.Number("1200")}
	write := func(m stage.Meta) {
		t.Helper()
		if err := stage.PutJSON(ctx, st, "a.txt.summary.json", doc, m); err != nil {
			t.Fatal(err)
		}
	}
	meta := stage.NewMeta(p, "openai", "summary/1", o, 2, false, time.Now())
	write(meta)
	kept, ok, err := stage.StoredAnswer(ctx, st, "a.txt.summary.json", p, prices, "openai")
	if err != nil || !ok {
		t.Fatalf("StoredAnswer = %v, %v; want the stored answer", ok, err)
	}
	got, _ := json.Marshal(kept.Answer.Doc)
	want, _ := json.Marshal(doc)
	if string(got) != string(want) {
		t.Errorf("doc %s, want %s (without meta)", got, want)
	}
	var back stage.Outcome
	kept.Restore(&back)
	if back.InputTokens != 30 || back.OutputTokens != 7 || back.Cost != 30+14 || back.Currency != "USD" || back.Model != "m1" ||
		kept.Requests != 2 || kept.Answer.Provider != "" {
		t.Errorf("restored %+v, requests %d, provider %q; want the meta's tokens priced, 2 requests, the primary provider", back, kept.Requests, kept.Answer.Provider)
	}
	for name, m := range map[string]func(*stage.Meta){
		"another batch":      func(m *stage.Meta) { m.Batch = "b0" },
		"another version":    func(m *stage.Meta) { m.SourceETag = "e0" },
		"a duplicate's copy": func(m *stage.Meta) { m.DuplicateOf, m.Requests = "/in/b.txt", 0 },
	} {
		mm := meta
		m(&mm)
		write(mm)
		if _, ok, err := stage.StoredAnswer(ctx, st, "a.txt.summary.json", p, prices, "openai"); ok || err != nil {
			t.Errorf("%s: StoredAnswer = %v, %v; want nothing", name, ok, err)
		}
	}
	if _, ok, err := stage.StoredAnswer(ctx, st, "missing.json", p, prices, "openai"); ok || err != nil {
		t.Errorf("missing result: StoredAnswer = %v, %v; want nothing", ok, err)
	}
}
