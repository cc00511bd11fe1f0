package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// StoredAnswer reads the result JSON an earlier attempt of item p stored
// at key (as PutJSON writes it) and returns the answer it holds as a Kept:
// the document without its meta, and the meta's tokens, requests and model,
// with their cost at prices (the answer's own prices when a fallback
// provider gave it are not in the meta: the primary's are used). provider
// is the worker's model's: another provider in the meta is kept in the
// outcome. Only a result of this batch and this version of the source,
// made by a model call (not a duplicate's copy), counts; anything else,
// and a missing or unreadable result, is (Kept{}, false, nil). A store
// that cannot be read is an error (the task is retried, nobody pays).
func StoredAnswer(ctx context.Context, out storage.Store, key string, p jobs.ItemPayload, prices llm.Prices, provider string) (Kept, bool, error) {
	b, err := ReadAll(ctx, out, key)
	if errors.Is(err, fs.ErrNotExist) || storage.IsPermanent(err) {
		return Kept{}, false, nil
	}
	if err != nil {
		return Kept{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // as Ask decodes answers
	if err := dec.Decode(&doc); err != nil {
		return Kept{}, false, nil
	}
	raw, err := json.Marshal(doc["meta"])
	if err != nil {
		return Kept{}, false, nil
	}
	var m Meta
	if json.Unmarshal(raw, &m) != nil || m.Batch != p.Batch || m.Source != p.Source.URL() || m.SourceETag != p.Source.ETag ||
		m.DuplicateOf != "" || m.Requests == 0 {
		return Kept{}, false, nil
	}
	delete(doc, "meta")
	a := Answer{Doc: doc, Model: m.Model, Calls: m.Requests,
		Usage: llm.Usage{InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, Estimated: m.Estimated}}
	if m.Provider != provider {
		a.Provider = m.Provider
	}
	var o Outcome
	o.Add(a, prices)
	return Kept{V: 1, Answer: a, Outcome: o, Requests: m.Requests, Estimated: m.Estimated}, true, nil
}
