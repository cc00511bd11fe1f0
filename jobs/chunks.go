package jobs

// Long documents are summarized in separate tasks: the item task plans the
// chunks and enqueues one map task per chunk; each map task records its
// chunk index in a Redis set (fan-in), and whoever completes the set
// enqueues the item's one reduce task. Everything here is references and
// counts: chunk objects and map answers live in the output store under
// WorkPrefix.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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
	Item ItemPayload `json:"item"`
	// Index is the chunk's 1-based index; Count how many chunks the document
	// has.
	Index int `json:"index"`
	Count int `json:"count"`
	// Pages is the range of the original's pages this chunk covers (nil for
	// documents without pages: DOCX, TXT, HTML, Markdown).
	Pages *PageRange `json:"pages,omitempty"`
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
}

// ReducePayload is the payload of a TypeReduce task.
type ReducePayload struct {
	V    int         `json:"v"`
	Item ItemPayload `json:"item"`
	// Count is how many chunks (map answers) the document has.
	Count int `json:"count"`
	// DocPages is the whole document's page count (0 when unknown).
	DocPages int `json:"doc_pages,omitempty"`
	// StartedMS is when the item's first stage started (Unix ms); 0: unknown.
	StartedMS int64 `json:"started_ms,omitempty"`
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

// WorkPrefix is the key prefix (ending in "/") under which a long
// document's chunk objects and map answers are kept in the output
// location while it is summarized.
func WorkPrefix(batch, item string) string { return ".llamapipe/work/" + batch + "/" + item + "/" }

// ChunkKey is the key of chunk index's object, e.g.
// ".llamapipe/work/<batch>/<item>/chunk-0001.pdf" for ext "pdf".
func ChunkKey(batch, item string, index int, ext string) string {
	return fmt.Sprintf("%schunk-%04d.%s", WorkPrefix(batch, item), index, ext)
}

// MapResultKey is the key of chunk index's map answer (JSON).
func MapResultKey(batch, item string, index int) string {
	return fmt.Sprintf("%smap-%04d.json", WorkPrefix(batch, item), index)
}

// AnswerKey is where a model's answer to one of an item's requests is kept
// (the validated JSON, its usage, cost and model) until the item's result
// is stored, so that a failed write is retried without asking the model
// again. name tells the requests of an item apart ("caption", "summary",
// "reduce"); the key is deterministic per item and request, and deleted
// once the item is recorded. It is directly in the batch's work folder,
// not under the item's work prefix: on a local folder a folder per item
// would cost a mkdir and an rmdir per item (the most expensive file-system
// calls of a short item, measured for issue 16).
func AnswerKey(batch, item, name string) string {
	return ".llamapipe/work/" + batch + "/answer-" + item + "-" + name + ".json"
}

// NewMapTask builds one chunk's map task (deterministic ID: enqueueing it
// twice is a no-op).
func NewMapTask(p MapPayload, queue string, maxRetry int) (*asynq.Task, error) {
	p.V = PayloadVersion
	p.Item.V = PayloadVersion
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
		asynq.Retention(Retention),
	), nil
}

// NewReduceTask builds a document's reduce task (deterministic ID).
func NewReduceTask(p ReducePayload, queue string, maxRetry int) (*asynq.Task, error) {
	p.V = PayloadVersion
	p.Item.V = PayloadVersion
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
		asynq.Retention(Retention),
	), nil
}

func (p MapPayload) validate() error {
	if err := p.Item.validate(); err != nil {
		return err
	}
	switch {
	case p.Item.Task != TaskSummarize:
		return fmt.Errorf("%w: map of a %q item", ErrBadPayload, p.Item.Task)
	case p.Count < 1 || p.Index < 1 || p.Index > p.Count:
		return fmt.Errorf("%w: chunk %d of %d", ErrBadPayload, p.Index, p.Count)
	case p.Pages != nil && (p.Pages.First < 1 || p.Pages.Last < p.Pages.First):
		return fmt.Errorf("%w: page range %d-%d", ErrBadPayload, p.Pages.First, p.Pages.Last)
	case p.Chunk == "" && p.Pages == nil:
		return fmt.Errorf("%w: chunk %d has neither an object nor a page range", ErrBadPayload, p.Index)
	}
	return nil
}

func (p ReducePayload) validate() error {
	if err := p.Item.validate(); err != nil {
		return err
	}
	switch {
	case p.Item.Task != TaskSummarize:
		return fmt.Errorf("%w: reduce of a %q item", ErrBadPayload, p.Item.Task)
	case p.Count < 1:
		return fmt.Errorf("%w: reduce of %d chunks", ErrBadPayload, p.Count)
	}
	return nil
}

// DecodeMap decodes and validates a map payload.
func DecodeMap(b []byte) (MapPayload, error) {
	var p MapPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if err := checkVersion(p.V); err != nil {
		return p, err
	}
	return p, p.validate()
}

// DecodeReduce decodes and validates a reduce payload.
func DecodeReduce(b []byte) (ReducePayload, error) {
	var p ReducePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if err := checkVersion(p.V); err != nil {
		return p, err
	}
	return p, p.validate()
}

// markMappedScript adds a chunk index to an item's set of mapped chunks,
// (re)sets the set's TTL and returns the set's size.
var markMappedScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('SCARD', KEYS[1])
`)

// MarkMapped records that chunk index of an item is mapped and returns how
// many distinct chunks of it are. A set of indices, not a counter: a
// duplicate delivery of a chunk counts once, so the caller that sees the
// full count enqueues the reduce (with its deterministic task ID, a second
// caller's enqueue is a no-op).
func (t *Tracker) MarkMapped(ctx context.Context, batch, item string, index int) (int, error) {
	n, err := markMappedScript.Run(ctx, t.rdb, []string{BatchMappedKey(t.prefix, batch, item)}, index, MappedTTL.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("batch %s item %s: mark chunk %d mapped: %w", batch, item, index, err)
	}
	return n, nil
}

// Mapped returns how many distinct chunks of an item are mapped.
func (t *Tracker) Mapped(ctx context.Context, batch, item string) (int, error) {
	n, err := t.rdb.SCard(ctx, BatchMappedKey(t.prefix, batch, item)).Result()
	if err != nil {
		return 0, fmt.Errorf("batch %s item %s: mapped chunks: %w", batch, item, err)
	}
	return int(n), nil
}

// ClearMapped forgets an item's mapped chunks (once it is recorded).
func (t *Tracker) ClearMapped(ctx context.Context, batch, item string) error {
	if err := t.rdb.Del(ctx, BatchMappedKey(t.prefix, batch, item)).Err(); err != nil {
		return fmt.Errorf("batch %s item %s: clear mapped chunks: %w", batch, item, err)
	}
	return nil
}

// setProgressScript stores an item's progress unless its final entry is
// recorded (the entry's recording removes the progress; a late map task
// must not bring it back).
var setProgressScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// SetProgressUnlessRecorded stores an item's progress, as SetProgress,
// unless the item is recorded already: the map tasks of a long document
// report progress concurrently with the reduce that records it.
func (t *Tracker) SetProgressUnlessRecorded(ctx context.Context, batch string, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("progress of %s: %w", p.Source, err)
	}
	if err := setProgressScript.Run(ctx, t.rdb, []string{BatchItemsKey(t.prefix, batch), BatchProgressKey(t.prefix, batch)}, p.Item, b).Err(); err != nil {
		return fmt.Errorf("progress of %s: %w", p.Source, err)
	}
	return nil
}

// KeepAnswer keeps an answer of an item in Redis under name, for when the
// work area in the output store cannot be written (see AnswerKey): the
// item's kept answers share one hash (KeptAnswersKey) with a TTL.
func (t *Tracker) KeepAnswer(ctx context.Context, batch, item, name string, answer []byte) error {
	key := KeptAnswersKey(t.prefix, batch, item)
	if _, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, name, answer)
		p.PExpire(ctx, key, KeptAnswerTTL)
		return nil
	}); err != nil {
		return fmt.Errorf("batch %s item %s: keep answer %s: %w", batch, item, name, err)
	}
	return nil
}

// KeptAnswer returns an answer KeepAnswer kept, if any.
func (t *Tracker) KeptAnswer(ctx context.Context, batch, item, name string) ([]byte, bool, error) {
	b, err := t.rdb.HGet(ctx, KeptAnswersKey(t.prefix, batch, item), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("batch %s item %s: kept answer %s: %w", batch, item, name, err)
	}
	return b, true, nil
}

// DropKeptAnswers forgets every answer kept for an item (once it is
// recorded).
func (t *Tracker) DropKeptAnswers(ctx context.Context, batch, item string) error {
	if err := t.rdb.Del(ctx, KeptAnswersKey(t.prefix, batch, item)).Err(); err != nil {
		return fmt.Errorf("batch %s item %s: drop kept answers: %w", batch, item, err)
	}
	return nil
}
