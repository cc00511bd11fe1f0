package jobs

// Long documents are summarized in separate tasks: the item task plans the
// chunks and enqueues one map task per chunk; each map task records its
// chunk index in a Redis set (fan-in), and whoever completes the set
// enqueues the item's one reduce task. Everything here is references and
// counts: chunk objects and map answers live in the output store under
// workarea.WorkPrefix.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

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
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or (ARGV[3] ~= '0' and redis.call('GETBIT', KEYS[3], ARGV[3]) == 1) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// SetProgressUnlessRecorded stores an item's progress, as SetProgress,
// unless the item is recorded already: the map tasks of a long document
// report progress concurrently with the reduce that records it. seq is the
// item's ItemPayload.Seq: a recorded entry spilled out of the items hash
// counts too (BatchRecordedKey).
func (t *Tracker) SetProgressUnlessRecorded(ctx context.Context, batch string, seq int64, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("progress of %s: %w", p.Source, err)
	}
	if err := setProgressScript.Run(ctx, t.rdb, []string{BatchItemsKey(t.prefix, batch), BatchProgressKey(t.prefix, batch), BatchRecordedKey(t.prefix, batch)}, p.Item, b, seq).Err(); err != nil {
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
