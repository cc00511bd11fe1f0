package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/storage"
)

// Item statuses in the manifest.
const (
	StatusDone    = "done"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
	// StatusCancelled: the batch was cancelled before the item ended.
	StatusCancelled = "cancelled"
)

// Batch describes one batch: what was asked (its Spec), by whom, and where
// results go. Its JSON is the batch record in Redis.
type Batch struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Spec is the request the batch was made from. Its Provider and Model
	// name what the batch was planned for (informational); its Include,
	// Exclude, MaxSize and MaxRetry are kept so that a retry batch is made
	// the same way.
	Spec
	// RetryOf names the batch whose failed items this batch retries.
	RetryOf string `json:"retry_of,omitempty"`
	// Watch names the watched inbox whose rolling batch this is.
	Watch string `json:"watch,omitempty"`
}

// Entry is one line of manifest.jsonl: the final state of one input item.
type Entry struct {
	// Item is the item's ID in the batch; Seq its number in a bounded
	// batch's listing (ItemPayload.Seq; 0: none).
	Item string `json:"item"`
	Seq  int64  `json:"seq,omitempty"`
	// Source is the full location of the input object.
	Source string   `json:"source"`
	ETag   string   `json:"etag"`
	Size   int64    `json:"size"`
	Kind   Kind     `json:"kind"`
	Type   FileType `json:"type,omitempty"`
	Status string   `json:"status"`
	// Results are the output keys, relative to the output location.
	Results []string `json:"results"`
	// Error is a human-readable reason; empty when done.
	Error        string  `json:"error"`
	Attempts     int     `json:"attempts"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	Cost         float64 `json:"cost"`
	Currency     string  `json:"currency,omitempty"`
	Model        string  `json:"model,omitempty"`
	Provider     string  `json:"provider,omitempty"` // who answered, under a fallback chain
	DurationMS   int64   `json:"duration_ms"`
	// Pages is a document's page count, when known; Chunks how many parts
	// it was mapped in (0: summarized in one request).
	Pages  int `json:"pages,omitempty"`
	Chunks int `json:"chunks,omitempty"`
	// Parent is, for an email attachment, the source of the message it
	// came in (that message's own entry).
	Parent string `json:"parent,omitempty"`
	// Key is the input's key relative to its source location (Source is
	// the location and the key joined).
	Key string `json:"key,omitempty"`
	// ResultBase is the key the item's results are named from.
	ResultBase string `json:"result_base,omitempty"`
	// Task is what was asked of the item (summarize or caption).
	Task string `json:"task,omitempty"`
	// RetryOf names the batch a retry batch's item retries (in the
	// manifest only: finalize sets it from Batch.RetryOf).
	RetryOf string `json:"retry_of,omitempty"`
}

// Counts is a batch's progress.
type Counts struct {
	Total        int     `json:"total"`
	Done         int     `json:"done"`
	Failed       int     `json:"failed"`
	Skipped      int     `json:"skipped"`
	Cancelled    int     `json:"cancelled"`
	Sealed       bool    `json:"sealed"`
	Finalized    bool    `json:"finalized"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Cost         float64 `json:"cost"`
	// Costs is Cost by currency; Currency is Cost's one currency ("": none or several).
	Costs    map[string]float64 `json:"costs,omitempty"`
	Currency string             `json:"currency,omitempty"`
	Finished time.Time          `json:"finished,omitzero"`
	// Fatal is the message that stopped the batch (bad key), if any.
	Fatal string `json:"fatal,omitempty"`
	// CancelRequested is true once the batch was cancelled.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Warning is a trouble the batch waits out (a failing batch API), or "".
	Warning string `json:"warning,omitempty"`
}

// Ended is the number of items that reached a final status.
func (c Counts) Ended() int { return c.Done + c.Failed + c.Skipped + c.Cancelled }

// Complete reports whether every item of a sealed batch ended.
func (c Counts) Complete() bool { return c.Sealed && c.Ended() >= c.Total }

// Batch states, one vocabulary for the CLI, the API, the dashboard and the
// completion webhook (States lists them in order; StateExpired and
// StateLost are a batch whose records are gone).
const (
	StateListing    = "listing"    // the sources are being listed (not sealed)
	StateRunning    = "running"    // items are being processed
	StateCancelling = "cancelling" // cancelled; running items stop at their next step
	StateFinalizing = "finalizing" // every item ended; the manifest is being written
	StateFinished   = "finished"   // the manifest is written
	StateCancelled  = "cancelled"  // the manifest of a cancelled batch is written
	StateStopped    = "stopped"    // a fatal error (a refused API key) stopped it
)

// States are the states Counts.State returns.
var States = []string{StateListing, StateRunning, StateCancelling, StateFinalizing, StateFinished, StateCancelled, StateStopped}

// Ended reports whether state is final: nothing more happens to the batch.
func Ended(state string) bool {
	switch state {
	case StateFinished, StateCancelled, StateStopped, StateExpired, StateLost:
		return true
	}
	return false
}

// State names where a batch stands, for people (see States).
func (c Counts) State() string {
	switch {
	case c.Fatal != "":
		return StateStopped
	case c.Finalized && c.CancelRequested:
		return StateCancelled
	case c.Finalized:
		return StateFinished
	case c.CancelRequested:
		return StateCancelling
	case c.Complete():
		return StateFinalizing
	case !c.Sealed:
		return StateListing
	}
	return StateRunning
}

// ErrNoBatch reports an unknown batch ID.
var ErrNoBatch = errors.New("jobs: no such batch")

// ErrBatchExists reports a batch ID that is taken.
var ErrBatchExists = errors.New("jobs: batch exists")

// Tracker keeps batch records in Redis. Keys of one batch share a hash tag,
// so the scripts work on Redis Cluster too.
type Tracker struct {
	rdb    redis.UniversalClient
	prefix string
	// repl writes what ingest, workers and cancel report as done (Seal,
	// Record, Cancel, MarkFinalized) so that a primary with replicas
	// answers only once a replica has it: a failover cannot lose it.
	repl *redisconn.Replicated
	// open opens the output locations spilled entries are read from
	// (SetPages).
	open func(ctx context.Context, location string) (storage.Store, error)
}

// NewTracker returns a Tracker. prefix namespaces the keys (keys.go); empty
// means DefaultPrefix.
func NewTracker(rdb redis.UniversalClient, prefix string) *Tracker {
	return &Tracker{rdb: rdb, prefix: ns(prefix), repl: redisconn.NewReplicated(rdb)}
}

// Create stores a new, unsealed batch.
func (t *Tracker) Create(ctx context.Context, b Batch) error {
	meta, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("create batch %s: %w", b.ID, err)
	}
	ok, err := t.rdb.HSetNX(ctx, BatchKey(t.prefix, b.ID), "meta", meta).Result()
	if err != nil {
		return fmt.Errorf("create batch %s: %w", b.ID, err)
	}
	if !ok {
		return fmt.Errorf("create batch %s: %w", b.ID, ErrBatchExists)
	}
	z := redis.Z{Score: float64(b.Created.UnixMilli()), Member: b.ID}
	if err := t.rdb.ZAdd(ctx, BatchesKey(t.prefix), z).Err(); err != nil {
		return fmt.Errorf("index batch %s: %w", b.ID, err)
	}
	if b.Tenant != "" {
		if err := t.rdb.ZAdd(ctx, TenantBatchesKey(t.prefix, b.Tenant), z).Err(); err != nil {
			return fmt.Errorf("index batch %s: %w", b.ID, err)
		}
	}
	return t.created(ctx, b)
}

// Get returns a batch's description.
func (t *Tracker) Get(ctx context.Context, id string) (Batch, error) {
	var b Batch
	meta, err := t.rdb.HGet(ctx, BatchKey(t.prefix, id), "meta").Bytes()
	if errors.Is(err, redis.Nil) {
		return b, t.missing(ctx, id)
	}
	if err != nil {
		return b, fmt.Errorf("batch %s: %w", id, err)
	}
	if err := json.Unmarshal(meta, &b); err != nil {
		return b, fmt.Errorf("batch %s: %w", id, err)
	}
	return b, nil
}

// List returns batch IDs, newest first, at most n (n <= 0: all).
func (t *Tracker) List(ctx context.Context, n int) ([]string, error) {
	return t.list(ctx, BatchesKey(t.prefix), n)
}

// ListTenant returns one tenant's batch IDs, newest first, at most n.
func (t *Tracker) ListTenant(ctx context.Context, tenant string, n int) ([]string, error) {
	return t.list(ctx, TenantBatchesKey(t.prefix, tenant), n)
}

func (t *Tracker) list(ctx context.Context, key string, n int) ([]string, error) {
	stop := int64(-1)
	if n > 0 {
		stop = int64(n - 1)
	}
	ids, err := t.rdb.ZRevRange(ctx, key, 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return ids, nil
}

// recordScript stores an item's final entry once and counts it. It returns
// 1 when the batch is sealed and every item has ended (whether or not this
// call recorded anything), so a retried caller enqueues the finalize again.
//
// A batch whose record has no meta (gone: expired, or lost with Redis's
// data) records nothing: the script marks the record "lost" (TTL ARGV[7]
// ms, so that status and the API tell why the batch is gone) and returns
// {-1, 0}. A first record also counts the item in its minute of Redis's
// clock (BatchSeriesKey: status and cost; model calls are counted as they
// end, by CountModelCall).
var recordScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then
  redis.call('HSET', KEYS[1], 'lost', '1')
  if redis.call('PTTL', KEYS[1]) == -1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
  end
  return {-1, 0}
end
local first = 0
if ARGV[9] == '0' or redis.call('GETBIT', KEYS[5], ARGV[9]) == 0 then
  first = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
  if first == 1 and ARGV[9] ~= '0' then redis.call('SETBIT', KEYS[5], ARGV[9], 1) end
end
redis.call('HDEL', KEYS[3], ARGV[1])
if first == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[1], 'input_tokens', ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'output_tokens', ARGV[5])
  redis.call('HINCRBYFLOAT', KEYS[1], 'cost', ARGV[6])
  if ARGV[8] ~= '' then
    redis.call('HINCRBYFLOAT', KEYS[1], 'cost:' .. ARGV[8], ARGV[6])
  end
  local m = math.floor(tonumber(redis.call('TIME')[1]) / 60) .. ':'
  redis.call('HINCRBY', KEYS[4], m .. ARGV[3], 1)
  if tonumber(ARGV[6]) ~= 0 then redis.call('HINCRBYFLOAT', KEYS[4], m .. 'cost', ARGV[6]) end
  if redis.call('PTTL', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[4], redis.call('PTTL', KEYS[1])) end
end
local v = redis.call('HMGET', KEYS[1], 'sealed', 'total', 'done', 'failed', 'skipped', 'cancelled')
if v[1] == '1' and (tonumber(v[3] or '0') + tonumber(v[4] or '0') + tonumber(v[5] or '0') + tonumber(v[6] or '0')) >= tonumber(v[2] or '0') then
  return {first, 1}
end
return {first, 0}
`)

// Record stores an item's final entry. The first entry recorded for an item
// wins; later ones (a duplicate delivery) are ignored, also once the first
// was spilled (jobs/spill) when the entry has its Seq (BatchRecordedKey). It reports whether
// this call recorded the entry and whether the batch is now complete. A
// batch whose record is gone records nothing: the error matches
// ErrNoBatch (ErrBatchExpired or ErrBatchLost) and asynq.SkipRetry, since
// no retry can record it.
func (t *Tracker) Record(ctx context.Context, batch string, e Entry) (recorded, complete bool, err error) {
	switch e.Status {
	case StatusDone, StatusFailed, StatusSkipped, StatusCancelled:
	default:
		return false, false, fmt.Errorf("record %s: bad status %q", e.Source, e.Status)
	}
	if e.Results == nil {
		e.Results = []string{}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return false, false, fmt.Errorf("record %s: %w", e.Source, err)
	}
	keys := t.recordKeys(batch)
	var cmd *redis.Cmd
	err = t.repl.Pipelined(ctx, keys[0], func(p redis.Pipeliner) {
		cmd = recordScript.Eval(ctx, p, keys, e.Item, b, e.Status, e.InputTokens, e.OutputTokens,
			strconv.FormatFloat(e.Cost, 'f', -1, 64), LostTTL.Milliseconds(), e.Currency, e.Seq)
	})
	res, cerr := []int64(nil), err
	if cmd != nil && (err == nil || errors.Is(err, redisconn.ErrNotReplicated)) {
		res, cerr = cmd.Int64Slice()
	}
	if cerr != nil {
		return false, false, fmt.Errorf("record %s in batch %s: %w", e.Source, batch, cerr)
	}
	if res[0] == -1 {
		return false, false, fmt.Errorf("record %s: %w: %w", e.Source, t.missing(ctx, batch), asynq.SkipRetry)
	}
	if err != nil { // recorded on the primary, no replica confirmed it: retry
		return res[0] == 1, false, fmt.Errorf("record %s in batch %s: %w", e.Source, batch, err)
	}
	return res[0] == 1, res[1] == 1, nil
}

// RecordMany records entries as Record does, in one round trip, and returns
// how many it recorded; completion is for the caller's Seal to report.
func (t *Tracker) RecordMany(ctx context.Context, batch string, es []Entry) (n int, err error) {
	keys := t.recordKeys(batch)
	cmds := make([]*redis.Cmd, len(es))
	if err = recordScript.Load(ctx, t.rdb).Err(); err == nil {
		_, err = t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range es {
				e.Results = append([]string{}, e.Results...)
				b, _ := json.Marshal(e) // an Entry always encodes
				cmds[i] = recordScript.EvalSha(ctx, p, keys, e.Item, b, e.Status, e.InputTokens, e.OutputTokens, strconv.FormatFloat(e.Cost, 'f', -1, 64), LostTTL.Milliseconds(), e.Currency, e.Seq)
			}
			return nil
		})
	}
	if err != nil {
		return 0, fmt.Errorf("record %d entries in batch %s: %w", len(es), batch, err)
	}
	for _, c := range cmds {
		if r, _ := c.Int64Slice(); len(r) == 2 && r[0] == -1 {
			return n, fmt.Errorf("record in batch %s: %w", batch, t.missing(ctx, batch))
		} else if len(r) == 2 && r[0] == 1 {
			n++
		}
	}
	return n, nil
}

// Series returns a batch's per-minute counts (BatchSeriesKey, jobs/series).
func (t *Tracker) Series(ctx context.Context, batch string) (map[string]string, error) {
	m, err := t.rdb.HGetAll(ctx, BatchSeriesKey(t.prefix, batch)).Result()
	if err != nil {
		return nil, fmt.Errorf("batch %s series: %w", batch, err)
	}
	return m, nil
}

func (t *Tracker) recordKeys(batch string) []string {
	return []string{BatchKey(t.prefix, batch), BatchItemsKey(t.prefix, batch), BatchProgressKey(t.prefix, batch), BatchSeriesKey(t.prefix, batch), BatchRecordedKey(t.prefix, batch)}
}

// Recorded reports whether an item already has its final entry: in the
// items hash, or, for seq > 0 (ItemPayload.Seq), in BatchRecordedKey — an
// entry spilled to the work area (jobs/spill) is recorded too.
func (t *Tracker) Recorded(ctx context.Context, batch, item string, seq int64) (bool, error) {
	// One round trip (every item's task asks at its start); the bit reads
	// 0 unless asked.
	var in *redis.BoolCmd
	bit := new(redis.IntCmd)
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		in = p.HExists(ctx, BatchItemsKey(t.prefix, batch), item)
		if seq > 0 {
			bit = p.GetBit(ctx, BatchRecordedKey(t.prefix, batch), seq)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("batch %s item %s: %w", batch, item, err)
	}
	return in.Val() || bit.Val() == 1, nil
}

var sealScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'sealed', '1')
local v = redis.call('HMGET', KEYS[1], 'done', 'failed', 'skipped', 'cancelled')
if (tonumber(v[1] or '0') + tonumber(v[2] or '0') + tonumber(v[3] or '0') + tonumber(v[4] or '0')) >= tonumber(ARGV[1]) then
  return 1
end
return 0
`)

// Seal sets a batch's total once ingest has listed everything. It reports
// whether every item has already ended (then the caller enqueues finalize).
func (t *Tracker) Seal(ctx context.Context, batch string, total int) (complete bool, err error) {
	var cmd *redis.Cmd
	key := BatchKey(t.prefix, batch)
	err = t.repl.Pipelined(ctx, key, func(p redis.Pipeliner) { cmd = sealScript.Eval(ctx, p, []string{key}, total) })
	var n int
	if err == nil {
		n, err = cmd.Int()
	}
	if err != nil {
		return false, fmt.Errorf("seal batch %s: %w", batch, err)
	}
	return n == 1, nil
}

// Counts returns a batch's progress.
func (t *Tracker) Counts(ctx context.Context, batch string) (Counts, error) {
	var c Counts
	m, err := t.rdb.HGetAll(ctx, BatchKey(t.prefix, batch)).Result()
	if err != nil {
		return c, fmt.Errorf("batch %s: %w", batch, err)
	}
	if _, ok := m["meta"]; !ok {
		return c, t.missing(ctx, batch)
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(m[k]); return n }
	c.Total, c.Done, c.Failed, c.Skipped, c.Cancelled = atoi("total"), atoi("done"), atoi("failed"), atoi("skipped"), atoi("cancelled")
	c.Sealed, c.Finalized = m["sealed"] == "1", m["finalized"] == "1"
	c.InputTokens, _ = strconv.ParseInt(m["input_tokens"], 10, 64)
	c.OutputTokens, _ = strconv.ParseInt(m["output_tokens"], 10, 64)
	c.Cost, _ = strconv.ParseFloat(m["cost"], 64)
	for k, v := range m {
		if cur, ok := strings.CutPrefix(k, "cost:"); ok {
			if c.Costs == nil {
				c.Costs = map[string]float64{}
			}
			c.Costs[cur], _ = strconv.ParseFloat(v, 64)
			c.Currency = cur
		}
	}
	if len(c.Costs) > 1 {
		c.Currency = ""
	}
	if ms, err := strconv.ParseInt(m["finished_ms"], 10, 64); err == nil {
		c.Finished = time.UnixMilli(ms)
	}
	c.Fatal, c.Warning = m["fatal"], m["warning"]
	c.CancelRequested = m["cancelled_at"] != ""
	return c, nil
}

var warnScript = redis.NewScript(`if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return 0 elseif ARGV[1] == '' then return redis.call('HDEL', KEYS[1], 'warning') else return redis.call('HSET', KEYS[1], 'warning', ARGV[1]) end`)

// SetWarning sets (msg "": clears) Counts.Warning of a batch that exists.
func (t *Tracker) SetWarning(ctx context.Context, batch, msg string) error {
	if err := warnScript.Run(ctx, t.rdb, []string{BatchKey(t.prefix, batch)}, msg).Err(); err != nil {
		return fmt.Errorf("batch %s: warning: %w", batch, err)
	}
	return nil
}

// Cancel marks a batch cancelled: workers end its remaining items as
// cancelled instead of processing them. It reports false when the batch was
// cancelled already.
func (t *Tracker) Cancel(ctx context.Context, batch string, at time.Time) (bool, error) {
	if _, err := t.Get(ctx, batch); err != nil {
		return false, err
	}
	var cmd *redis.BoolCmd
	err := t.repl.Pipelined(ctx, BatchKey(t.prefix, batch), func(p redis.Pipeliner) {
		cmd = p.HSetNX(ctx, BatchKey(t.prefix, batch), "cancelled_at", at.UnixMilli())
	})
	first := err == nil && cmd.Val()
	if err != nil {
		return false, fmt.Errorf("cancel batch %s: %w", batch, err)
	}
	return first, nil
}

// Cancelled reports whether a batch was cancelled.
func (t *Tracker) Cancelled(ctx context.Context, batch string) (bool, error) {
	n, err := t.rdb.HExists(ctx, BatchKey(t.prefix, batch), "cancelled_at").Result()
	if err != nil {
		return false, fmt.Errorf("batch %s: %w", batch, err)
	}
	return n, nil
}

// SetFatal stops a batch with one message (e.g. the provider refused the API
// key). The first message wins; first reports whether this call's did.
// Workers check Fatal before each item.
func (t *Tracker) SetFatal(ctx context.Context, batch, msg string) (first bool, err error) {
	first, err = t.rdb.HSetNX(ctx, BatchKey(t.prefix, batch), "fatal", msg).Result()
	if err != nil {
		return false, fmt.Errorf("stop batch %s: %w", batch, err)
	}
	return first, nil
}

// Fatal returns the message that stopped a batch, or "".
func (t *Tracker) Fatal(ctx context.Context, batch string) (string, error) {
	s, err := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), "fatal").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("batch %s: %w", batch, err)
	}
	return s, nil
}

// MarkFinalized records that the manifest and report were written.
func (t *Tracker) MarkFinalized(ctx context.Context, batch string, at time.Time) error {
	if err := t.repl.Pipelined(ctx, BatchKey(t.prefix, batch), func(p redis.Pipeliner) {
		p.HSet(ctx, BatchKey(t.prefix, batch), "finalized", "1", "finished_ms", at.UnixMilli())
	}); err != nil {
		return fmt.Errorf("finalize batch %s: %w", batch, err)
	}
	return nil
}

// Entries returns every recorded entry of a batch, sorted by source. It
// reads the entries page by page (HSCAN), so a large batch is never one
// giant reply.
func (t *Tracker) Entries(ctx context.Context, batch string) ([]Entry, error) {
	byItem := map[string]Entry{}
	var cursor uint64
	for {
		page, next, err := t.EntriesPage(ctx, batch, cursor, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			byItem[e.Item] = e // HSCAN may return a field twice: keep one
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	out := make([]Entry, 0, len(byItem))
	for _, e := range byItem {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Item < out[j].Item
	})
	return out, nil
}

// EachEntry calls fn with every recorded entry of a batch, page by page
// (EntriesPage, 500 fields a page), each page sorted by source then item;
// the pages come in Redis's hash order, so the whole is not sorted, and an
// item is never given twice. Memory is O(page) plus the item IDs already
// given (HSCAN may return a field twice). An error from fn stops it.
func (t *Tracker) EachEntry(ctx context.Context, batch string, fn func(Entry) error) error {
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		all, next, err := t.EntriesPage(ctx, batch, cursor, 500)
		if err != nil {
			return err
		}
		page := all[:0]
		for _, e := range all {
			if _, dup := seen[e.Item]; !dup {
				seen[e.Item] = struct{}{}
				page = append(page, e)
			}
		}
		sort.Slice(page, func(i, j int) bool {
			if page[i].Source != page[j].Source {
				return page[i].Source < page[j].Source
			}
			return page[i].Item < page[j].Item
		})
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
