package stage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// Meta is what every result records about how it was made.
type Meta struct {
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
	// Frame says that only the first frame or page of the source was
	// used ("first of 12 frames (animated GIF)"); empty for one picture.
	Frame string `json:"frame,omitempty"`
	// Product is the product a caption was asked with (a feed row's or
	// the sidecar's); nil: none.
	Product *Product `json:"product,omitempty"`
}

// Product is a caption's product context as its result records it (the
// catalog export reads it back).
type Product struct {
	SKU   string `json:"sku,omitempty"`
	Name  string `json:"name,omitempty"`
	Brand string `json:"brand,omitempty"`
}

// NewMeta is the meta block of item p's result made with a prompt of
// promptVersion by provider (o's, when a fallback chain answered): o's model and tokens, requests made, and
// whether the tokens are estimated, created at now.
func NewMeta(p jobs.ItemPayload, provider, promptVersion string, o Outcome, requests int, estimated bool, now time.Time) Meta {
	return Meta{Model: o.Model, Provider: cmp.Or(o.Provider, provider), PromptVersion: promptVersion, Source: p.Source.URL(),
		SourceETag: p.Source.ETag, Batch: p.Batch, InputTokens: o.InputTokens, OutputTokens: o.OutputTokens,
		Requests: requests, Estimated: estimated, Created: now.UTC().Format("2006-01-02T15:04:05Z"),
		Fingerprint: p.Fingerprint}
}

// PutJSON writes doc (with "meta" added) as indented JSON, trying again
// and classifying a failure as Put does.
func PutJSON(ctx context.Context, out storage.Store, key string, doc map[string]any, m Meta) error {
	o, err := JSONObject(key, doc, m)
	if err != nil {
		return err
	}
	return Put(ctx, out, key, o.Data, o.ContentType)
}

// JSONObject is the result object PutJSON writes: doc with "meta" added,
// as indented JSON, at key (for a PutGroup with the item's other results).
func JSONObject(key string, doc map[string]any, m Meta) (storage.Object, error) {
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
		return storage.Object{}, fmt.Errorf("encode %s: %w", key, err)
	}
	return storage.Object{Key: key, Data: buf.Bytes(), ContentType: "application/json"}, nil
}

// Language is the language results are written in: the batch's, else "en".
func Language(o jobs.Options) string {
	if o.Language == "" {
		return "en"
	}
	return o.Language
}

// Read fetches an object, refusing one that changed since ingest (its ETag
// differs from ref's) or is over maxBytes, or is empty (Permanent errors).
func Read(ctx context.Context, st storage.Store, ref jobs.Ref, maxBytes int64) ([]byte, error) {
	info, err := st.Stat(ctx, ref.Key)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", ref.URL(), err)
	}
	if ref.ETag != "" && info.ETag != ref.ETag {
		return nil, Permanent(fmt.Sprintf("source changed after ingest (ETag %s, now %s): run the batch again to process the new version", ref.ETag, info.ETag), nil)
	}
	if info.Size > maxBytes {
		return nil, Permanent(fmt.Sprintf("too large: %d bytes is over the worker's %d-byte limit", info.Size, maxBytes), nil)
	}
	rc, err := st.Get(ctx, ref.Key, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref.URL(), err)
	}
	defer rc.Close()
	// One allocation of the object's size, not io.ReadAll's doublings.
	buf := bytes.NewBuffer(make([]byte, 0, info.Size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(rc, maxBytes+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", ref.URL(), err)
	}
	data := buf.Bytes()
	if int64(len(data)) > maxBytes {
		return nil, Permanent(fmt.Sprintf("too large: over the worker's %d-byte limit", maxBytes), nil)
	}
	if len(data) == 0 {
		return nil, Permanent("empty file (0 bytes)", nil)
	}
	return data, nil
}
