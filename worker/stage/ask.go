package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/jsonx"
)

// Completer is the one model method Ask calls (llm.Client has it; the
// worker hands the stages a wrapper that decides online or batch mode).
type Completer interface {
	Complete(ctx context.Context, req llm.Request) (llm.Response, error)
}

// Answer is one validated structured answer and what it cost.
type Answer struct {
	Doc   map[string]any
	Usage llm.Usage
	Model string
	Calls int
	// Batch: answered through the provider's batch API.
	Batch bool
	// Provider and Prices are, for an answer of a fallback chain, the
	// provider that answered and, when not the primary, its prices.
	Provider string
	Prices   *llm.Prices
}

// Ask sends a request whose answer must be JSON valid against tmpl's schema.
// A non-JSON or invalid answer is repaired when it can be (code fences,
// trailing commas, text around the object), else asked for once more; then
// the item fails and the raw answer is kept next to the results as
// <base>.raw.txt in out for inspection.
func Ask(ctx context.Context, m Completer, tmpl *prompts.Template, req llm.Request, out storage.Store, base string) (Answer, error) {
	var a Answer
	if tmpl.Schema != nil {
		req.Schema = &llm.Schema{Name: tmpl.SchemaName, JSON: tmpl.Schema}
	}
	var raw string
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		resp, err := m.Complete(ctx, req)
		if err != nil {
			return a, err
		}
		a.Calls++
		a.Usage.InputTokens += resp.Usage.InputTokens
		a.Usage.OutputTokens += resp.Usage.OutputTokens
		a.Usage.ImageTokens += resp.Usage.ImageTokens
		a.Usage.Images += resp.Usage.Images
		a.Usage.Estimated = a.Usage.Estimated || resp.Usage.Estimated
		a.Model = resp.Model
		a.Batch = a.Batch || resp.Batch
		a.Provider, a.Prices = resp.Provider, resp.Prices
		raw = resp.Text
		doc, err := decodeAnswer(tmpl, resp.Text)
		if err == nil {
			a.Doc = doc
			return a, nil
		}
		lastErr = err
		// Ask once more, saying what was wrong.
		req.Parts = append(append([]llm.Part{}, req.Parts...), llm.Part{Text: fmt.Sprintf(
			"Your previous answer could not be used (%s). Answer again with only one JSON object that follows the schema.", trimReason(err))})
	}
	rawKey := base + ".raw.txt"
	if perr := out.Put(ctx, rawKey, strings.NewReader(raw), int64(len(raw)), "text/plain; charset=utf-8"); perr != nil {
		return a, fmt.Errorf("keep raw answer: %w", perr)
	}
	return a, Permanent(fmt.Sprintf("the model's answer was not valid %s JSON after a second request (%s); raw answer kept at %s",
		tmpl.SchemaName, trimReason(lastErr), rawKey), lastErr)
}

func decodeAnswer(tmpl *prompts.Template, text string) (map[string]any, error) {
	if tmpl.Schema == nil {
		return map[string]any{"text": text}, nil
	}
	js, err := jsonx.Extract(text)
	if err != nil {
		return nil, fmt.Errorf("no JSON object in the answer: %w", err)
	}
	if err := tmpl.Validate(js); err != nil {
		return nil, err
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("answer is not a JSON object: %w", err)
	}
	return doc, nil
}

func trimReason(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
