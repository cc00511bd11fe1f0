package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A batch's records live until it is finalized, then for a retention
// period (finalize.Config.Retention, DefaultRetention 30 days): Expire sets
// their TTL. Its tombstone (BatchTombstoneKey) outlives them by a year, so
// that its ID is answered "expired" rather than unknown, and tells a batch
// whose record vanished before it ended (Redis lost data) — "lost" — from
// one that expired.

// Batch states beyond Counts.State, for a batch whose record is gone.
const (
	// StateExpired: the batch was finalized and its records expired after
	// the retention period.
	StateExpired = "expired"
	// StateLost: the batch's record vanished before it was finalized
	// (Redis lost data: a restart without persistence, an eviction).
	StateLost = "lost"
)

// ErrBatchExpired and ErrBatchLost report a batch whose record is gone
// (see StateExpired, StateLost). Both also match ErrNoBatch, so a caller
// that does not tell them apart treats them as unknown.
var (
	ErrBatchExpired = fmt.Errorf("%w: its records expired", ErrNoBatch)
	ErrBatchLost    = fmt.Errorf("%w: its record was lost (Redis lost data)", ErrNoBatch)
)

// GoneError is the error of a batch whose record is gone but whose ID is
// known: errors.Is matches ErrBatchExpired or ErrBatchLost (by State), and
// ErrNoBatch.
type GoneError struct {
	ID string
	// State is StateExpired or StateLost.
	State string
	// Tenant owned the batch; empty when unknown (a batch lost with its
	// tombstone, known only from a worker's late record).
	Tenant string
	// Finished is when an expired batch was finalized.
	Finished time.Time
}

func (e *GoneError) Error() string {
	if e.State == StateExpired {
		return fmt.Sprintf("batch %s: %s", e.ID, ErrBatchExpired)
	}
	return fmt.Sprintf("batch %s: %s", e.ID, ErrBatchLost)
}

// Is matches ErrNoBatch, and ErrBatchExpired or ErrBatchLost by State.
func (e *GoneError) Is(target error) bool {
	switch target {
	case ErrNoBatch:
		return true
	case ErrBatchExpired:
		return e.State == StateExpired
	case ErrBatchLost:
		return e.State == StateLost
	}
	return false
}

// atLeastTTLScript raises a key's TTL to at least ARGV[1] ms (a key without
// a TTL gets one).
var atLeastTTLScript = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl ~= -2 and ttl < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
`)

// created writes a new batch's tombstone and gives its indexes a TTL.
func (t *Tracker) created(ctx context.Context, b Batch) error {
	tomb := BatchTombstoneKey(t.prefix, b.ID)
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, tomb, "state", "created", "tenant", b.Tenant)
		p.PExpire(ctx, tomb, DefaultRetention+TombstoneTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create batch %s: tombstone: %w", b.ID, err)
	}
	for _, key := range t.indexes(b.Tenant) {
		if err := atLeastTTLScript.Run(ctx, t.rdb, []string{key}, DefaultRetention.Milliseconds()).Err(); err != nil {
			return fmt.Errorf("index batch %s: %w", b.ID, err)
		}
	}
	return nil
}

func (t *Tracker) indexes(tenant string) []string {
	keys := []string{BatchesKey(t.prefix)}
	if tenant != "" {
		keys = append(keys, TenantBatchesKey(t.prefix, tenant))
	}
	return keys
}

// expireScript ends a finalized batch's keys' lives: KEYS are the record,
// items, progress, tombstone, series and recorded bitmap; ARGV the retention in ms, the tombstone's
// TTL in ms, the finish time in ms and the tenant. A batch without a record
// is left alone.
var expireScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then
  return 0
end
redis.call('HSET', KEYS[4], 'state', 'finalized', 'finished_ms', ARGV[3], 'tenant', ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[5], ARGV[1])
redis.call('PEXPIRE', KEYS[6], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
`)

// Expire starts a finalized batch's retention: its record and items
// expire after retention (<= 0: DefaultRetention), its progress is
// deleted, its tombstone lives TombstoneTTL longer, and the batch indexes
// lose the batches created more than retention before now (a zset member
// cannot expire). It is idempotent; a second call restarts the retention.
func (t *Tracker) Expire(ctx context.Context, b Batch, retention time.Duration, now time.Time) error {
	if retention <= 0 {
		retention = DefaultRetention
	}
	keys := []string{BatchKey(t.prefix, b.ID), BatchItemsKey(t.prefix, b.ID), BatchProgressKey(t.prefix, b.ID), BatchTombstoneKey(t.prefix, b.ID), BatchSeriesKey(t.prefix, b.ID), BatchRecordedKey(t.prefix, b.ID)}
	if err := expireScript.Run(ctx, t.rdb, keys, retention.Milliseconds(), (retention + TombstoneTTL).Milliseconds(), now.UnixMilli(), b.Tenant).Err(); err != nil {
		return fmt.Errorf("expire batch %s: %w", b.ID, err)
	}
	cutoff := "(" + strconv.FormatInt(now.Add(-retention).UnixMilli(), 10)
	for _, key := range t.indexes(b.Tenant) {
		if err := t.rdb.ZRemRangeByScore(ctx, key, "-inf", cutoff).Err(); err != nil {
			return fmt.Errorf("trim batch index: %w", err)
		}
		if err := atLeastTTLScript.Run(ctx, t.rdb, []string{key}, retention.Milliseconds()).Err(); err != nil {
			return fmt.Errorf("trim batch index: %w", err)
		}
	}
	return nil
}

// missing explains a batch ID whose record holds no meta: a *GoneError
// when its tombstone, a lost mark or its items say it existed, else
// ErrNoBatch.
func (t *Tracker) missing(ctx context.Context, id string) error {
	tomb, err := t.rdb.HGetAll(ctx, BatchTombstoneKey(t.prefix, id)).Result()
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	if len(tomb) > 0 {
		g := &GoneError{ID: id, State: StateLost, Tenant: tomb["tenant"]}
		if tomb["state"] == "finalized" {
			g.State = StateExpired
			if ms, err := strconv.ParseInt(tomb["finished_ms"], 10, 64); err == nil {
				g.Finished = time.UnixMilli(ms)
			}
		}
		return g
	}
	n, err := t.rdb.Exists(ctx, BatchKey(t.prefix, id), BatchItemsKey(t.prefix, id)).Result()
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	if n > 0 {
		return &GoneError{ID: id, State: StateLost}
	}
	return fmt.Errorf("batch %s: %w", id, ErrNoBatch)
}

// Gone reports how a batch whose record is gone is known: the *GoneError
// in err, or nil when err is not one.
func Gone(err error) *GoneError {
	var g *GoneError
	if errors.As(err, &g) {
		return g
	}
	return nil
}
