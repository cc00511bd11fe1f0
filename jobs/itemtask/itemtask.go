package itemtask

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
)

// Version is the payload version this package writes.
const Version = 2

// wire is a version 2 payload. Fields the batch record can give are left
// out; the ones that may differ from what it gives (an explicit item of a
// retry: another location, a result base kept from the batch it retries)
// are spelled out only when they do.
type wire struct {
	V     int    `json:"v"`
	Batch string `json:"b"`
	// Source is the index of the item's location in the batch's Sources;
	// Location is set instead when it is none of them.
	Source   int    `json:"s,omitempty"`
	Location string `json:"l,omitempty"`
	Key      string `json:"k"`
	ETag     string `json:"e,omitempty"`
	Size     int64  `json:"z,omitempty"`
	// Pages limits a document to a page range.
	Pages *jobs.PageRange `json:"p,omitempty"`
	Type  jobs.FileType   `json:"t"`
	// ResultBase is set when it is not the one jobs.ResultBase derives.
	ResultBase  string `json:"r,omitempty"`
	Fingerprint string `json:"f,omitempty"`
	// Part is an email attachment's part path in its message, Fetch a feed
	// row's URL, Parent the source of an attachment's message
	// (jobs.Ref.Part, jobs.Ref.Fetch, jobs.ItemPayload.Parent).
	Part   string `json:"pt,omitempty"`
	Fetch  string `json:"u,omitempty"`
	Parent string `json:"pa,omitempty"`
	// SKU and Name are a feed row's (jobs.Ref.SKU, jobs.Ref.Name).
	SKU  string `json:"sk,omitempty"`
	Name string `json:"nm,omitempty"`
	// Trace is the W3C traceparent of the ingest that queued the item
	// (jobs.ItemPayload.Trace), "" when tracing is off.
	Trace string `json:"tr,omitempty"`
	// Seq is jobs.ItemPayload.Seq.
	Seq int64 `json:"q,omitempty"`
}

// Options are asynq options of an item task besides its ID, type and payload.
type Options struct {
	// Queue is the asynq queue; MaxRetry how often it is retried.
	Queue    string
	MaxRetry int
	// Retention is how long the task stays in Redis once completed. Zero
	// means jobs.Retention; negative means not at all (a fed batch, whose
	// cursor and the manifest records already keep an item from being
	// queued twice).
	Retention time.Duration
}

// NewTask builds the task of item p of batch b. It writes a version 2
// payload when p can be told from b (always, for items ingest lists), and a
// version 1 payload otherwise.
func NewTask(b jobs.Batch, p jobs.ItemPayload, o Options) (*asynq.Task, error) {
	data, err := Encode(b, p)
	if err != nil {
		return nil, err
	}
	opts := []asynq.Option{asynq.TaskID(jobs.ItemTaskID(p.Batch, p.Item)), asynq.Queue(o.Queue), asynq.MaxRetry(o.MaxRetry)}
	switch {
	case o.Retention == 0:
		opts = append(opts, asynq.Retention(jobs.Retention))
	case o.Retention > 0:
		opts = append(opts, asynq.Retention(o.Retention))
	}
	return asynq.NewTask(jobs.TypeItem, data, opts...), nil
}

// Encode returns item p's payload: version 2 when decoding it with b gives
// p back, else version 1 (jobs.NewItemTask's).
func Encode(b jobs.Batch, p jobs.ItemPayload) ([]byte, error) {
	w, ok := compact(b, p)
	if !ok {
		t, err := jobs.NewItemTask(p, jobs.QueueDefault, 0)
		if err != nil {
			return nil, err
		}
		return t.Payload(), nil
	}
	data, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode item payload: %w", err)
	}
	return data, nil
}

// compact makes p's version 2 form, and reports whether expanding it with b
// gives p back.
func compact(b jobs.Batch, p jobs.ItemPayload) (wire, bool) {
	w := wire{V: Version, Batch: p.Batch, Source: -1, Key: p.Source.Key, ETag: p.Source.ETag, Size: p.Source.Size,
		Pages: p.Source.Pages, Type: p.Type, Fingerprint: p.Fingerprint, Trace: p.Trace,
		Part: p.Source.Part, Fetch: p.Source.Fetch, Parent: p.Parent, SKU: p.Source.SKU, Name: p.Source.Name, Seq: p.Seq}
	for i, s := range b.Sources {
		if s == p.Source.Location {
			w.Source = i
			break
		}
	}
	if w.Source < 0 {
		w.Source, w.Location = 0, p.Source.Location
	}
	if p.Batch != b.ID || p.Out == "" || p.Task == "" || p.ResultBase == "" || p.Out != b.Out || !reflect.DeepEqual(p.Options, b.Options) || p.Source.Key == "" ||
		p.Kind != p.Type.Kind() || p.Task != taskOf(p.Kind) || p.Item != itemID(p.Source.Location, p.Source.Key, p.Source.Part) {
		return w, false
	}
	if p.ResultBase != resultBase(b, w) {
		w.ResultBase = p.ResultBase
	}
	// Whatever the checks above miss (a field added to ItemPayload and not
	// to wire), the round trip catches: such a payload goes as version 1.
	q, err := expand(b, w)
	q.V = p.V
	return w, err == nil && reflect.DeepEqual(p, q)
}

// itemID is the item ID ingest gives an object, or an email attachment
// (part) of it.
func itemID(location, key, part string) string {
	if part != "" {
		return jobs.ItemID(location, key+"#part="+part)
	}
	return jobs.ItemID(location, key)
}

func taskOf(k jobs.Kind) string {
	switch k {
	case jobs.KindImage:
		return jobs.TaskCaption
	case jobs.KindDocument:
		return jobs.TaskSummarize
	}
	return ""
}

func resultBase(b jobs.Batch, w wire) string {
	if w.Location != "" {
		return jobs.ResultBase(0, 1, w.Location, w.Key)
	}
	return jobs.ResultBase(w.Source, len(b.Sources), b.Sources[w.Source], w.Key)
}

// BatchOf returns the batch ID a payload names (any version), without
// the batch record.
func BatchOf(data []byte) (string, error) {
	var h struct {
		V     int    `json:"v"`
		B     string `json:"b"`
		Batch string `json:"batch"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return "", fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if h.V == Version {
		return h.B, nil
	}
	return h.Batch, nil
}

// Decode decodes an item payload of either version. A version 2 payload is
// completed from its batch record, which batch returns (called only for
// version 2).
func Decode(data []byte, batch func(id string) (jobs.Batch, error)) (jobs.ItemPayload, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return jobs.ItemPayload{}, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if w.V != Version {
		return jobs.DecodeItem(data)
	}
	if w.Batch == "" {
		return jobs.ItemPayload{}, fmt.Errorf("%w: no batch", jobs.ErrBadPayload)
	}
	b, err := batch(w.Batch)
	if err != nil {
		return jobs.ItemPayload{}, fmt.Errorf("item payload of batch %s: %w", w.Batch, err)
	}
	return expand(b, w)
}

// expand completes a version 2 payload from its batch record.
func expand(b jobs.Batch, w wire) (jobs.ItemPayload, error) {
	if w.Location == "" && (w.Source < 0 || w.Source >= len(b.Sources)) {
		return jobs.ItemPayload{}, fmt.Errorf("%w: source %d of %d", jobs.ErrBadPayload, w.Source, len(b.Sources))
	}
	loc := w.Location
	if loc == "" {
		loc = b.Sources[w.Source]
	}
	kind := w.Type.Kind()
	p := jobs.ItemPayload{V: jobs.PayloadVersion, Batch: w.Batch, Item: itemID(loc, w.Key, w.Part),
		Source: jobs.Ref{Location: loc, Key: w.Key, ETag: w.ETag, Size: w.Size, Pages: w.Pages, Part: w.Part, Fetch: w.Fetch,
			SKU: w.SKU, Name: w.Name},
		Type: w.Type, Kind: kind, Task: taskOf(kind), Out: b.Out, ResultBase: w.ResultBase, Options: b.Options,
		Fingerprint: w.Fingerprint, Trace: w.Trace, Parent: w.Parent, Seq: w.Seq}
	if p.ResultBase == "" {
		p.ResultBase = resultBase(b, w)
	}
	switch {
	case w.Key == "":
		return p, fmt.Errorf("%w: no source key", jobs.ErrBadPayload)
	case p.Task == "":
		return p, fmt.Errorf("%w: type %q has no task", jobs.ErrBadPayload, w.Type)
	case p.Out == "":
		return p, fmt.Errorf("%w: batch %s has no output", jobs.ErrBadPayload, b.ID)
	case w.Pages != nil && (w.Pages.First < 1 || w.Pages.Last < w.Pages.First):
		return p, fmt.Errorf("%w: page range %d-%d", jobs.ErrBadPayload, w.Pages.First, w.Pages.Last)
	}
	return p, nil
}
