// Package chunktask holds the payloads of a long document's map and reduce
// tasks: the item task plans the chunks and enqueues one map task per chunk;
// each map task records its chunk index in a Redis set (fan-in, see
// jobs.Tracker.MarkMapped), and whoever completes the set enqueues the
// item's one reduce task. Everything here is references and counts: chunk
// objects and map answers live in the output store under workarea.WorkPrefix.
package chunktask

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
)

// Task types of a long document's map and reduce.
const (
	// TypeMap asks the model for the facts of one chunk of a long document.
	TypeMap = "llamapipe:map"
	// TypeReduce combines a long document's map answers into its digest and
	// records the item.
	TypeReduce = "llamapipe:reduce"
)

// MapPayload is the payload of a TypeMap task: one chunk of a long
// document. It holds references only.
type MapPayload struct {
	V int `json:"v"`
	// Item is the document's item payload as ingest enqueued it.
	Item jobs.ItemPayload `json:"item"`
	// Index is the chunk's 1-based index; Count how many chunks the document
	// has.
	Index int `json:"index"`
	Count int `json:"count"`
	// Pages is the range of the original's pages this chunk covers (nil for
	// documents without pages: DOCX, TXT, HTML, Markdown).
	Pages *jobs.PageRange `json:"pages,omitempty"`
	// Chunk is the key, in the item's output location (Item.Out), of the
	// chunk object: a chunk PDF (pages Pages of the original, renumbered from
	// 1) or the chunk's text. Empty: the map reads Pages from the original
	// (Item.Source) — used when the PDF could not be split.
	Chunk string `json:"chunk,omitempty"`
	// DocPages is the whole document's page count (0 when unknown).
	DocPages int `json:"doc_pages,omitempty"`
	// StartedMS is when the item's first stage started (Unix ms), so that
	// the manifest's duration covers every stage. 0: unknown.
	StartedMS int64 `json:"started_ms,omitempty"`
	// Trace is the item task span's W3C traceparent (jobs/tracing; "" in
	// older payloads: then Item.Trace), the parent of the map's span.
	Trace string `json:"trace,omitempty"`
}

// ReducePayload is the payload of a TypeReduce task.
type ReducePayload struct {
	V    int              `json:"v"`
	Item jobs.ItemPayload `json:"item"`
	// Count is how many chunks (map answers) the document has.
	Count int `json:"count"`
	// DocPages is the whole document's page count (0 when unknown).
	DocPages int `json:"doc_pages,omitempty"`
	// StartedMS is when the item's first stage started (Unix ms); 0: unknown.
	StartedMS int64  `json:"started_ms,omitempty"`
	Trace     string `json:"trace,omitempty"` // as MapPayload.Trace
}

// ChunkLabel names a chunk for people: "chunk 3 of 12 (pages 41–60)", or
// "chunk 3 of 12" without pages.
func (p MapPayload) ChunkLabel() string {
	s := fmt.Sprintf("chunk %d of %d", p.Index, p.Count)
	if r := p.Pages; r != nil {
		if r.First == r.Last {
			return s + fmt.Sprintf(" (page %d)", r.First)
		}
		return s + fmt.Sprintf(" (pages %d–%d)", r.First, r.Last)
	}
	return s
}

// MapTaskID is the asynq task ID of one chunk's map task.
func MapTaskID(batch, item string, index int) string {
	return "map:" + batch + ":" + item + ":" + strconv.Itoa(index)
}

// ReduceTaskID is the asynq task ID of a document's reduce task.
func ReduceTaskID(batch, item string) string { return "reduce:" + batch + ":" + item }

// NewMapTask builds one chunk's map task (deterministic ID: enqueueing it
// twice is a no-op).
func NewMapTask(p MapPayload, queue string, maxRetry int) (*asynq.Task, error) {
	p.V = jobs.PayloadVersion
	p.Item.V = jobs.PayloadVersion
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode map payload: %w", err)
	}
	return asynq.NewTask(TypeMap, b,
		asynq.TaskID(MapTaskID(p.Item.Batch, p.Item.Item, p.Index)),
		asynq.Queue(queue),
		asynq.MaxRetry(maxRetry),
		asynq.Retention(jobs.Retention),
	), nil
}

// NewReduceTask builds a document's reduce task (deterministic ID).
func NewReduceTask(p ReducePayload, queue string, maxRetry int) (*asynq.Task, error) {
	p.V = jobs.PayloadVersion
	p.Item.V = jobs.PayloadVersion
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode reduce payload: %w", err)
	}
	return asynq.NewTask(TypeReduce, b,
		asynq.TaskID(ReduceTaskID(p.Item.Batch, p.Item.Item)),
		asynq.Queue(queue),
		asynq.MaxRetry(maxRetry),
		asynq.Retention(jobs.Retention),
	), nil
}

func (p MapPayload) validate() error {
	if err := p.Item.Validate(); err != nil {
		return err
	}
	switch {
	case p.Item.Task != jobs.TaskSummarize:
		return fmt.Errorf("%w: map of a %q item", jobs.ErrBadPayload, p.Item.Task)
	case p.Count < 1 || p.Index < 1 || p.Index > p.Count:
		return fmt.Errorf("%w: chunk %d of %d", jobs.ErrBadPayload, p.Index, p.Count)
	case p.Pages != nil && (p.Pages.First < 1 || p.Pages.Last < p.Pages.First):
		return fmt.Errorf("%w: page range %d-%d", jobs.ErrBadPayload, p.Pages.First, p.Pages.Last)
	case p.Chunk == "" && p.Pages == nil:
		return fmt.Errorf("%w: chunk %d has neither an object nor a page range", jobs.ErrBadPayload, p.Index)
	}
	return nil
}

func (p ReducePayload) validate() error {
	if err := p.Item.Validate(); err != nil {
		return err
	}
	switch {
	case p.Item.Task != jobs.TaskSummarize:
		return fmt.Errorf("%w: reduce of a %q item", jobs.ErrBadPayload, p.Item.Task)
	case p.Count < 1:
		return fmt.Errorf("%w: reduce of %d chunks", jobs.ErrBadPayload, p.Count)
	}
	return nil
}

// DecodeMap decodes and validates a map payload.
func DecodeMap(b []byte) (MapPayload, error) {
	var p MapPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if err := jobs.CheckVersion(p.V); err != nil {
		return p, err
	}
	return p, p.validate()
}

// DecodeReduce decodes and validates a reduce payload.
func DecodeReduce(b []byte) (ReducePayload, error) {
	var p ReducePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if err := jobs.CheckVersion(p.V); err != nil {
		return p, err
	}
	return p, p.validate()
}
