package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/jsonx"
)

// answer is one validated structured answer and what it cost.
type answer struct {
	doc   map[string]any
	usage llm.Usage
	model string
	calls int
	// batch: answered through the provider's batch API.
	batch bool
}

// add accumulates another answer's usage into o.
func (o *outcome) add(a answer, prices llm.Prices) {
	o.inputTokens += a.usage.InputTokens
	o.outputTokens += a.usage.OutputTokens
	cost := prices.Cost(a.usage)
	if a.batch && prices.BatchDiscount > 0 {
		cost *= prices.BatchDiscount // answered through the batch API
	}
	o.cost += cost
	o.currency = prices.Currency
	if a.model != "" {
		o.model = a.model
	}
}

// ask sends a request whose answer must be JSON valid against tmpl's schema.
// A non-JSON or invalid answer is repaired when it can be (code fences,
// trailing commas, text around the object), else asked for once more; then
// the item fails and the raw answer is kept next to the results as
// <base>.raw.txt for inspection.
func (w *Worker) ask(ctx context.Context, tmpl *prompts.Template, req llm.Request, out storage.Store, base string) (answer, error) {
	var a answer
	if tmpl.Schema != nil {
		req.Schema = &llm.Schema{Name: tmpl.SchemaName, JSON: tmpl.Schema}
	}
	var raw string
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		resp, err := w.complete(ctx, req)
		if err != nil {
			return a, err
		}
		a.calls++
		a.usage.InputTokens += resp.Usage.InputTokens
		a.usage.OutputTokens += resp.Usage.OutputTokens
		a.usage.ImageTokens += resp.Usage.ImageTokens
		a.usage.Estimated = a.usage.Estimated || resp.Usage.Estimated
		a.model = resp.Model
		a.batch = a.batch || resp.Batch
		raw = resp.Text
		doc, err := decodeAnswer(tmpl, resp.Text)
		if err == nil {
			a.doc = doc
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
	return a, permanent(fmt.Sprintf("the model's answer was not valid %s JSON after a second request (%s); raw answer kept at %s",
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

// meta is what every result records about how it was made.
type meta struct {
	Model         string `json:"model"`
	Provider      string `json:"provider"`
	PromptVersion string `json:"prompt_version"`
	Source        string `json:"source"`
	SourceETag    string `json:"source_etag"`
	Batch         string `json:"batch"`
	InputTokens   int    `json:"input_tokens"`
	OutputTokens  int    `json:"output_tokens"`
	Requests      int    `json:"requests"`
	Estimated     bool   `json:"tokens_estimated,omitempty"`
	Created       string `json:"created"`
	// DuplicateOf names the source with the same bytes whose result this
	// is (nothing was paid for it again).
	DuplicateOf string `json:"duplicate_of,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// putJSON writes doc (with "meta" added) as indented JSON.
func putJSON(ctx context.Context, out storage.Store, key string, doc map[string]any, m meta) error {
	full := make(map[string]any, len(doc)+1)
	for k, v := range doc {
		full[k] = v
	}
	full["meta"] = m
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(full); err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := out.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), "application/json"); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (w *Worker) meta(p jobs.ItemPayload, tmpl *prompts.Template, o outcome, requests int, estimated bool) meta {
	prof := w.cfg.Model.Profile()
	return meta{Model: o.model, Provider: prof.Provider, PromptVersion: tmpl.Version, Source: p.Source.URL(),
		SourceETag: p.Source.ETag, Batch: p.Batch, InputTokens: o.inputTokens, OutputTokens: o.outputTokens,
		Requests: requests, Estimated: estimated, Created: w.now().UTC().Format("2006-01-02T15:04:05Z"),
		Fingerprint: p.Fingerprint}
}

func language(o jobs.Options) string {
	if o.Language == "" {
		return "en"
	}
	return o.Language
}
