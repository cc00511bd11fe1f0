package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names.
const (
	// TypeItem processes one input object (a document or an image).
	TypeItem = "llamapipe:item"
	// TypeFinalize writes a batch's manifest and report once every item ended.
	TypeFinalize = "llamapipe:finalize"
)

// Queue names. Workers weigh them with QueueWeights.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueNightly  = "nightly"
)

// QueueWeights returns asynq queue priorities: critical work is picked six
// times as often as nightly work, default three times.
func QueueWeights() map[string]int {
	return map[string]int{QueueCritical: 6, QueueDefault: 3, QueueNightly: 1}
}

// ValidQueue reports whether q is one of the queues workers serve.
func ValidQueue(q string) bool {
	_, ok := QueueWeights()[q]
	return ok
}

// Tasks a batch can run.
const (
	TaskAuto      = "auto"      // documents are summarized, images captioned
	TaskSummarize = "summarize" // documents only
	TaskCaption   = "caption"   // images only
)

// PayloadVersion is the version of the payloads this build writes. Decoders
// refuse payloads of a newer version with a permanent error.
const PayloadVersion = 1

// ErrBadPayload marks a payload that cannot be decoded: retrying won't help.
var ErrBadPayload = errors.New("jobs: bad payload")

// Ref points at one object.
type Ref struct {
	// Location is the URL of the store's root (s3://bucket/prefix or a path).
	Location string `json:"location"`
	// Key is the object key relative to Location.
	Key string `json:"key"`
	// ETag is the object's ETag when it was listed.
	ETag string `json:"etag,omitempty"`
	// Size is the object's size in bytes when it was listed.
	Size int64 `json:"size,omitempty"`
	// Pages limits a document to a 1-based inclusive page range.
	Pages *PageRange `json:"pages,omitempty"`
	// Part is the MIME part path ("2", "2.1") of an attachment inside the
	// object, an .eml (see jobs/mailparts); empty: the whole object.
	Part string `json:"part,omitempty"`
	// Fetch is, for a feed row, the http(s) URL of the image the worker
	// fetches (Location names the feed, Key the row's key).
	Fetch string `json:"fetch,omitempty"`
	// SKU and Name are a feed row's product, for the caption prompt and
	// the catalog; short (ingest/feedfile bounds them).
	SKU  string `json:"sku,omitempty"`
	Name string `json:"name,omitempty"`
}

// URL returns the object's full location, e.g. s3://bucket/prefix/key,
// and for an attachment its part: …/mail.eml#part=2.1.
func (r Ref) URL() string {
	u := r.Location
	if r.Key != "" {
		u = strings.TrimRight(r.Location, "/") + "/" + r.Key
	}
	if r.Part != "" {
		u += "#part=" + r.Part
	}
	return u
}

// PageRange is a 1-based inclusive page range.
type PageRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// Options are per-batch settings the workers need (part of a Spec, and
// copied into every item's payload). They hold no secrets.
type Options struct {
	// Language of the output, e.g. "en". Empty means English.
	Language string `json:"language,omitempty" yaml:"language"`
	// MaxOutputTokens overrides the profile's default when non-zero.
	MaxOutputTokens int `json:"max_output_tokens,omitempty" yaml:"max_output_tokens"`
	// Products is the URL of a product sidecar (CSV or JSONL: image key →
	// SKU, name, brand) given to the caption prompt as context.
	Products string `json:"products,omitempty" yaml:"products"`
	// ModelMode is how the model is reached: online (the default), batch
	// (through the provider's batch API, at its batch price, answers within
	// its window) or auto (batch on the nightly queue, online elsewhere).
	// It does not change results, so it is not part of fingerprints.
	ModelMode string   `json:"model_mode,omitempty" yaml:"model_mode"`
	Fallback  []string `json:"fallback,omitempty" yaml:"fallback"` // presets that answer, in order, while the provider is down
	// KeepText keeps a document's extracted text beside its digest:
	// <file>.text.md (the text the model saw, with page markers) and
	// <file>.chunks.jsonl (page-anchored chunks for search). False: not
	// kept.
	KeepText bool `json:"keep_text,omitempty" yaml:"keep_text"`
}

// ItemPayload is the payload of a TypeItem task.
type ItemPayload struct {
	V     int    `json:"v"`
	Batch string `json:"batch"`
	// Item is the item's ID within its batch (see ItemID).
	Item string `json:"item"`
	// Source is the input object.
	Source Ref `json:"source"`
	// Type is the sniffed file type ("pdf", "jpeg", ...); Kind its kind.
	Type FileType `json:"type"`
	Kind Kind     `json:"kind"`
	// Task is summarize or caption (never auto: ingest resolves it).
	Task string `json:"task"`
	// Out is the output location; ResultBase the key results are named from.
	Out        string  `json:"out"`
	ResultBase string  `json:"result_base"`
	Options    Options `json:"options,omitzero"`
	// Fingerprint is what the result is made from (see jobs/fingerprint); the
	// worker leaves it as a marker next to the results.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Trace is the W3C traceparent of the ingest that queued the item (a
	// trace and span ID, no secret; empty when tracing is off), so the
	// item's spans join the ingest's trace (jobs/tracing).
	Trace string `json:"trace,omitempty"`
	// Parent is, for an email attachment, the source of its message.
	Parent string `json:"parent,omitempty"`
	// Seq numbers the item in a bounded batch's listing (1-based, unique
	// in the batch; 0: none): Entry.Seq, BatchRecordedKey.
	Seq int64 `json:"seq,omitempty"`
}

// FinalizePayload is the payload of a TypeFinalize task.
type FinalizePayload struct {
	V     int    `json:"v"`
	Batch string `json:"batch"`
	Trace string `json:"trace,omitempty"` // a traceparent the finalize span links to
}

// ItemID is the deterministic ID of an input object, made from its full
// URL: the same object always gets the same ID, also when it is reached
// through two overlapping sources (s3://b/p + "x/k" and s3://b/p/x + "k").
func ItemID(location, key string) string {
	h := sha256.Sum256([]byte(Ref{Location: location, Key: key}.URL()))
	return hex.EncodeToString(h[:10])
}

// ItemTaskID is the asynq task ID of an item in a batch: enqueueing the same
// item of the same batch twice is a no-op.
func ItemTaskID(batch, item string) string { return "item:" + batch + ":" + item }

// FinalizeTaskID is the asynq task ID of a batch's finalize task.
func FinalizeTaskID(batch string) string { return "finalize:" + batch }

// Retention is how long completed tasks stay in Redis, so that a duplicate
// enqueue within that time is still recognised as one.
const Retention = 24 * time.Hour

// NewItemTask builds the asynq task for an item.
func NewItemTask(p ItemPayload, queue string, maxRetry int) (*asynq.Task, error) {
	p.V = PayloadVersion
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode item payload: %w", err)
	}
	return asynq.NewTask(TypeItem, b,
		asynq.TaskID(ItemTaskID(p.Batch, p.Item)),
		asynq.Queue(queue),
		asynq.MaxRetry(maxRetry),
		asynq.Retention(Retention),
	), nil
}

// NewFinalizeTask builds the asynq task that finalizes a batch.
func NewFinalizeTask(batch, queue string) (*asynq.Task, error) {
	return NewLinkedFinalizeTask(batch, queue, "")
}

// NewLinkedFinalizeTask is NewFinalizeTask linked to traceparent's trace.
func NewLinkedFinalizeTask(batch, queue, traceparent string) (*asynq.Task, error) {
	b, err := json.Marshal(FinalizePayload{V: PayloadVersion, Batch: batch, Trace: traceparent})
	if err != nil {
		return nil, fmt.Errorf("encode finalize payload: %w", err)
	}
	return asynq.NewTask(TypeFinalize, b,
		asynq.TaskID(FinalizeTaskID(batch)),
		asynq.Queue(queue),
		asynq.MaxRetry(25),
		asynq.Retention(Retention),
	), nil
}

// Validate checks an item payload (the map and reduce payloads embed one).
func (p ItemPayload) Validate() error {
	switch {
	case p.Batch == "":
		return fmt.Errorf("%w: no batch", ErrBadPayload)
	case p.Item == "":
		return fmt.Errorf("%w: no item id", ErrBadPayload)
	case p.Source.Location == "" || p.Source.Key == "":
		return fmt.Errorf("%w: no source", ErrBadPayload)
	case p.Task != TaskSummarize && p.Task != TaskCaption:
		return fmt.Errorf("%w: task %q", ErrBadPayload, p.Task)
	case p.Out == "" || p.ResultBase == "":
		return fmt.Errorf("%w: no output", ErrBadPayload)
	case p.Source.Pages != nil && (p.Source.Pages.First < 1 || p.Source.Pages.Last < p.Source.Pages.First):
		return fmt.Errorf("%w: page range %d-%d", ErrBadPayload, p.Source.Pages.First, p.Source.Pages.Last)
	}
	return nil
}

// CheckVersion refuses a payload this build cannot read: from a newer
// build, or without a version.
func CheckVersion(v int) error {
	if v > PayloadVersion || v < 1 {
		return fmt.Errorf("%w: version %d (this build reads up to %d)", ErrBadPayload, v, PayloadVersion)
	}
	return nil
}

// DecodeItem decodes and validates an item payload.
func DecodeItem(b []byte) (ItemPayload, error) {
	var p ItemPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if err := CheckVersion(p.V); err != nil {
		return p, err
	}
	return p, p.Validate()
}

// DecodeFinalize decodes a finalize payload.
func DecodeFinalize(b []byte) (FinalizePayload, error) {
	var p FinalizePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if p.V > PayloadVersion || p.V < 1 || p.Batch == "" {
		return p, fmt.Errorf("%w: finalize payload v%d batch %q", ErrBadPayload, p.V, p.Batch)
	}
	return p, nil
}

// Result key suffixes.
const (
	SuffixSummaryJSON = ".summary.json"
	SuffixSummaryMD   = ".summary.md"
	SuffixCaptionJSON = ".caption.json"
	// SuffixTextMD and SuffixChunksJSONL name a document's kept text
	// (Options.KeepText).
	SuffixTextMD      = ".text.md"
	SuffixChunksJSONL = ".chunks.jsonl"
	// ManifestKey and ReportKey are the latest finalized batch's manifest
	// and report at the output location's root: copies of its own (see
	// Batch.ManifestPath).
	ManifestKey = "manifest.jsonl"
	ReportKey   = "report.md"
	// WatchBatchesPrefix holds every batch's own manifest and report
	// (batches/<id>/), so that batches into one output location (a retry,
	// a watched inbox's rolling batches) never replace each other's.
	WatchBatchesPrefix = "batches/"
)

// ManifestPath is where the batch's own manifest goes, relative to its
// output location: batches/<id>/manifest.jsonl. Finalize then copies it to
// the root's manifest.jsonl (ManifestKey), which is the latest batch's.
func (b Batch) ManifestPath() string { return b.reportDir() + ManifestKey }

// ReportPath is where the batch's own report goes (see ManifestPath).
func (b Batch) ReportPath() string { return b.reportDir() + ReportKey }

func (b Batch) reportDir() string { return WatchBatchesPrefix + b.ID + "/" }

// ResultKey is the deterministic key of one result: the item's result base
// plus a suffix, e.g. "contracts/a.pdf" + ".summary.json". A re-run writes
// the same key, so it overwrites and never duplicates.
func ResultKey(resultBase, suffix string) string { return resultBase + suffix }

// ResultBase derives an item's result base from its key relative to its
// source. With several sources, the source's index and last path element
// keep results from different sources apart.
func ResultBase(sourceIndex, sources int, sourceLocation, key string) string {
	key = strings.TrimLeft(key, "/")
	if sources <= 1 {
		return key
	}
	name := path.Base(strings.TrimRight(sourceLocation, "/"))
	if name == "." || name == "/" || name == "" {
		name = "source"
	}
	return fmt.Sprintf("%d-%s/%s", sourceIndex+1, name, key)
}
