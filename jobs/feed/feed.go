// Package feed keeps a bounded batch's feed in Redis (jobs.BatchFeedKey):
// where its listing stands, how many pages of items wait in its work area,
// which is the next to queue, and how many were handed to the queue. It
// also names the feed task, which workers run to top the queue up
// (ingest.Ingester.TopUp).
//
// It must not know ingest or worker; both use it.
package feed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
)

// TypeFeed tops a bounded batch's queue up from its pages.
const TypeFeed = "llamapipe:feed"

// PageKey is where page n of a batch's items to queue is kept, relative to
// its output location: one item payload (jobs/itemtask) a line.
func PageKey(batch string, n int) string {
	return fmt.Sprintf(".llamapipe/work/%s/feed/page-%08d.jsonl", batch, n)
}

// State is a batch's feed.
type State struct {
	// Source and Key are the listing's cursor: every object up to Key of
	// source Source (in listing order) is in a page or recorded; Listed
	// counts them.
	Source int    `redis:"source"`
	Key    string `redis:"key"`
	Listed int    `redis:"listed"`
	// Items counts the items of those objects: the objects and their
	// emails' attachments (0 in a feed written before it was counted).
	Items int `redis:"items"`
	// Pages are written; Done once the listing ended (the last page too).
	Pages int  `redis:"pages"`
	Done  bool `redis:"done"`
	// Next is the next page to queue from, Offset the next line in it.
	Next   int `redis:"next"`
	Offset int `redis:"offset"`
	// Handed counts items handed to the queue (by ingest and from pages);
	// ByIngest the items ingest recorded itself (skipped).
	Handed   int `redis:"handed"`
	ByIngest int `redis:"by_ingest"`
}

// Fed reports whether every item is out of the pages.
func (s State) Fed() bool { return s.Done && s.Next >= s.Pages }

// Queued is how many of the batch's items are in the queue (or running)
// now, given its counts.
func (s State) Queued(c jobs.Counts) int { return s.Handed - (c.Ended() - s.ByIngest) }

// Store reads and writes feeds.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Store on rdb with the key prefix ("" means jobs.DefaultPrefix).
func New(rdb redis.UniversalClient, prefix string) *Store { return &Store{rdb: rdb, prefix: prefix} }

// Get returns a batch's feed; ok is false when it has none.
func (s *Store) Get(ctx context.Context, batch string) (st State, ok bool, err error) {
	res := s.rdb.HGetAll(ctx, jobs.BatchFeedKey(s.prefix, batch))
	m, err := res.Result()
	if err != nil {
		return st, false, fmt.Errorf("feed of %s: %w", batch, err)
	}
	if len(m) == 0 {
		return st, false, nil
	}
	if err := res.Scan(&st); err != nil {
		return st, false, fmt.Errorf("feed of %s: %w", batch, err)
	}
	return st, true, nil
}

// Set writes fields of a batch's feed (name, value pairs as in State's
// redis tags) and renews its TTL.
func (s *Store) Set(ctx context.Context, batch string, fields ...any) error {
	key := jobs.BatchFeedKey(s.prefix, batch)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fields...)
		p.Expire(ctx, key, jobs.FeedTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("feed of %s: %w", batch, err)
	}
	return nil
}

// Add adds n to a counter (handed, by_ingest) of a batch's feed.
func (s *Store) Add(ctx context.Context, batch, field string, n int) error {
	if n == 0 {
		return nil
	}
	key := jobs.BatchFeedKey(s.prefix, batch)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, field, int64(n))
		p.Expire(ctx, key, jobs.FeedTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("feed of %s: %w", batch, err)
	}
	return nil
}

// Advance moves a batch's feed to page next, line offset, adding handed
// items handed to the queue.
func (s *Store) Advance(ctx context.Context, batch string, next, offset, handed int) error {
	key := jobs.BatchFeedKey(s.prefix, batch)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "next", next, "offset", offset)
		p.HIncrBy(ctx, key, "handed", int64(handed))
		p.Expire(ctx, key, jobs.FeedTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("feed of %s: %w", batch, err)
	}
	return nil
}

// Has reports whether a batch has a feed.
func (s *Store) Has(ctx context.Context, batch string) (bool, error) {
	n, err := s.rdb.Exists(ctx, jobs.BatchFeedKey(s.prefix, batch)).Result()
	if err != nil {
		return false, fmt.Errorf("feed of %s: %w", batch, err)
	}
	return n > 0, nil
}

// Lock takes the batch's feed lock; it returns the function that releases
// it, or nil when another holds it.
func (s *Store) Lock(ctx context.Context, batch string) (func(), error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := jobs.BatchFeedLockKey(s.prefix, batch)
	ok, err := s.rdb.SetNX(ctx, key, token, jobs.FeedLockTTL).Result()
	if err != nil {
		return nil, fmt.Errorf("feed lock of %s: %w", batch, err)
	}
	if !ok {
		return nil, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = unlock.Run(ctx, s.rdb, []string{key}, token).Err()
	}, nil
}

var unlock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Payload is the feed task's payload.
type Payload struct {
	V     int    `json:"v"`
	Batch string `json:"batch"`
}

// Task IDs of a batch's feed tasks: the one items ending ask for, and two
// that take turns polling while items wait in pages (a task cannot enqueue
// its own ID while it runs).
const (
	Ended = ""
	PollA = ":a"
	PollB = ":b"
)

// TaskID is the ID of a batch's feed task of kind Ended, PollA or PollB.
func TaskID(batch, kind string) string { return "feed:" + batch + kind }

// NewTask builds a feed task of batch; it runs after delay. Completed feed
// tasks are not kept, so the same ID can be queued again at once.
func NewTask(batch, queue, kind string, delay time.Duration) *asynq.Task {
	b, _ := json.Marshal(Payload{V: jobs.PayloadVersion, Batch: batch})
	return asynq.NewTask(TypeFeed, b, asynq.TaskID(TaskID(batch, kind)), asynq.Queue(queue), asynq.MaxRetry(25),
		asynq.ProcessIn(delay), asynq.Timeout(10*time.Minute))
}

// Decode decodes a feed task's payload.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if p.V < 1 || p.V > jobs.PayloadVersion || p.Batch == "" {
		return p, fmt.Errorf("%w: feed payload v%d batch %q", jobs.ErrBadPayload, p.V, p.Batch)
	}
	return p, nil
}

// Enqueuer is the part of *asynq.Client a feed task's sender uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Ask enqueues a batch's feed task of kind; one already waiting is enough.
func Ask(ctx context.Context, q Enqueuer, batch, queue, kind string, delay time.Duration) error {
	_, err := q.EnqueueContext(ctx, NewTask(batch, queue, kind, delay))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue feed of %s: %w", batch, err)
	}
	return nil
}
