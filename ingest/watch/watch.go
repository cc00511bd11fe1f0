// Package watch processes new and changed objects of an inbox (a folder or
// an S3 prefix) as they land: each object is enqueued once, deduplicated by
// key and ETag, into a rolling batch per day (or per N items) with its own
// manifest and report.
//
// Arrivals are found by listing the inbox at an interval (an unchanged inbox
// costs one listing and one Redis read, whatever its size) and, where the
// store sends them, from S3 event notifications (see events.go): MinIO's
// Redis target, or AWS's S3 → SQS. Notifications make arrivals prompt; the
// listing still runs, less often, and catches anything a notification lost.
//
// What was seen lives in Redis, under the watch's name, so a restarted
// watcher neither repeats nor loses work; a lease (jobs/lease) makes sure
// one watcher per name runs at a time.
//
// watch knows ingest (it adds items through an ingest.Feed) and jobs; it
// knows nothing of workers or models.
package watch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/lease"
	"github.com/llamapipe/llamapipe/storage"
)

// Config configures a Watcher.
type Config struct {
	// Name identifies the watch: its state, lease and batch IDs derive from
	// it. Required; letters, digits, '-', '_' and '.'.
	Name string
	// Feed adds items to batches (ingest.Ingester.NewFeed). Required.
	Feed *ingest.Feed
	// Redis keeps what was seen and the current batch. Required.
	Redis redis.UniversalClient
	// Prefix namespaces the Redis keys (jobs.WatchStateKey and the keys
	// beside it). Empty means jobs.DefaultPrefix.
	Prefix string
	// Interval is how often the inbox is listed. Zero means one minute.
	Interval time.Duration
	// RollEvery starts a new batch after this many items; batches also
	// roll at midnight. Zero: one batch per day.
	RollEvery int
	// Location sets where days begin. Nil means UTC.
	Location *time.Location
	// Settle is how long an object must have been unmodified before it is
	// taken (a file still being copied into a folder is not). Zero takes
	// objects at once.
	Settle time.Duration
	// Retention is how long a watch's state and what it has seen stay in
	// Redis after its last write: a watch removed or stopped that long
	// forgets them (and takes the inbox's objects again if restarted).
	// Every poll and admission renews it. Zero means jobs.DefaultRetention
	// (30 days).
	Retention time.Duration
	// RoomEvery is how often a watch whose batch has its bound of items
	// queued (Spec.MaxQueued) looks again for room. Zero means a second.
	RoomEvery time.Duration
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName reports whether s can name a watch.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Watcher follows one inbox.
type Watcher struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	srcs []storage.Location
	// mu serialises admissions: the poller and the event consumer share
	// the current batch and its count.
	mu sync.Mutex
}

// New returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	if cfg.Feed == nil || cfg.Redis == nil {
		return nil, errors.New("watch: Feed and Redis are required")
	}
	if !ValidName(cfg.Name) {
		return nil, fmt.Errorf("watch: bad name %q: use letters, digits, '-', '_' and '.'", cfg.Name)
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, jobs.DefaultPrefix)
	cfg.Interval = cmp.Or(cfg.Interval, time.Minute)
	cfg.Retention = cmp.Or(cfg.Retention, jobs.DefaultRetention)
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	w := &Watcher{cfg: cfg, now: cfg.Now}
	if w.now == nil {
		w.now = time.Now
	}
	w.log = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)).With("watch", cfg.Name)
	for _, s := range cfg.Feed.Sources() {
		loc, err := storage.ParseLocation(s)
		if err != nil {
			return nil, fmt.Errorf("watch %s: source %s: %w", cfg.Name, s, err)
		}
		w.srcs = append(w.srcs, loc)
	}
	return w, nil
}

// DefaultName derives a stable watch name from what is watched, for a
// watcher started without one: the inbox's last path element and a short
// hash of the sources and output.
func DefaultName(sources []string, out string) string {
	h := sha256.Sum256([]byte(strings.Join(sources, "\n") + "\n->" + out))
	base := "inbox"
	if len(sources) > 0 {
		s := strings.TrimRight(sources[0], "/")
		if i := strings.LastIndexAny(s, "/:"); i >= 0 {
			s = s[i+1:]
		}
		s = regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(s, "-")
		s = strings.Trim(s, "-._")
		if s != "" {
			base = s
		}
	}
	if len(base) > 40 {
		base = base[:40]
	}
	return base + "-" + hex.EncodeToString(h[:3])
}

// Redis keys of a watch (jobs/keys.go); they share the name's hash tag
// (Redis Cluster).
func (w *Watcher) stateKey() string { return jobs.WatchStateKey(w.cfg.Prefix, w.cfg.Name) }
func (w *Watcher) seenKey() string  { return jobs.WatchSeenKey(w.cfg.Prefix, w.cfg.Name) }

// keep renews the lifetime of the watch's state and seen keys
// (Config.Retention) in p.
func (w *Watcher) keep(ctx context.Context, p redis.Pipeliner) {
	p.PExpire(ctx, w.stateKey(), w.cfg.Retention)
	p.PExpire(ctx, w.seenKey(), w.cfg.Retention)
}

// touch renews the lifetime of the watch's keys.
func (w *Watcher) touch(ctx context.Context) error {
	if _, err := w.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error { w.keep(ctx, p); return nil }); err != nil {
		return fmt.Errorf("watch %s: renew state: %w", w.cfg.Name, err)
	}
	return nil
}

// LeaseKey is the Redis key of the watch's lease.
func (w *Watcher) LeaseKey() string { return jobs.WatchLeaseKey(w.cfg.Prefix, w.cfg.Name) }

// Seen states of an object version.
const (
	// stAdmitted: counted in a batch; its task may not be queued yet.
	stAdmitted = "a"
	// stQueued: queued (or recorded as skipped) in its batch.
	stQueued = "q"
	// stCurrent: its results were current already: in no batch.
	stCurrent = "c"
)

type seenValue struct{ etag, state, batch string }

func parseSeen(s string) (seenValue, bool) {
	p := strings.SplitN(s, "\t", 3)
	if len(p) != 3 {
		return seenValue{}, false
	}
	return seenValue{etag: p[0], state: p[1], batch: p[2]}, true
}

func (v seenValue) String() string { return v.etag + "\t" + v.state + "\t" + v.batch }

// Stats counts what one poll or one set of events did.
type Stats struct {
	// Listed objects (polls) or events considered.
	Seen int
	// Added to a batch (queued or recorded as skipped).
	Added int
	// Current: results already current, left alone.
	Current int
	// Settling: modified too recently; taken on a later poll.
	Settling int
	// Sealed batches (rolled over).
	Sealed []string
}

// Poll lists the inbox once, adds what is new or changed, forgets objects
// that are gone, and rolls the batch over when its day has ended.
func (w *Watcher) Poll(ctx context.Context) (Stats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st Stats
	seen, err := w.cfg.Redis.HGetAll(ctx, w.seenKey()).Result()
	if err != nil {
		return st, fmt.Errorf("watch %s: read state: %w", w.cfg.Name, err)
	}
	if err := w.rollover(ctx, &st); err != nil {
		return st, err
	}
	listed := make(map[string]bool, len(seen))
	for i, src := range w.cfg.Feed.Sources() {
		for info, err := range w.cfg.Feed.List(ctx, i) {
			if err != nil {
				return st, fmt.Errorf("watch %s: %w", w.cfg.Name, err)
			}
			st.Seen++
			id := jobs.ItemID(src, info.Key)
			listed[id] = true
			if err := w.consider(ctx, i, info, seen[id], &st); err != nil {
				return st, err
			}
		}
	}
	var gone []string
	for id := range seen {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	for len(gone) > 0 {
		n := min(len(gone), 1000)
		if err := w.cfg.Redis.HDel(ctx, w.seenKey(), gone[:n]...).Err(); err != nil {
			return st, fmt.Errorf("watch %s: forget deleted objects: %w", w.cfg.Name, err)
		}
		gone = gone[n:]
	}
	return st, w.touch(ctx)
}

// Tick rolls the batch over when its day has ended, without listing.
func (w *Watcher) Tick(ctx context.Context) (Stats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st Stats
	return st, w.rollover(ctx, &st)
}

// consider adds one object version unless it was seen already. prev is its
// seen record ("" when none).
func (w *Watcher) consider(ctx context.Context, source int, info storage.ObjectInfo, prev string, st *Stats) error {
	v, ok := parseSeen(prev)
	if ok && v.etag == info.ETag && v.state != stAdmitted {
		return nil // seen: the common case, costing nothing
	}
	if w.cfg.Settle > 0 && !info.Modified.IsZero() && w.now().Sub(info.Modified) < w.cfg.Settle {
		st.Settling++
		return nil
	}
	src := w.cfg.Feed.Sources()[source]
	id := jobs.ItemID(src, info.Key)
	it := w.cfg.Feed.Classify(ctx, source, info)
	it.ID = itemID(src, info.Key, info.ETag)
	if ok && v.etag == info.ETag && v.state == stAdmitted {
		// Counted in a batch, but the watcher stopped before queueing it.
		return w.add(ctx, id, v.batch, it, info.ETag, st)
	}
	if it.Unchanged {
		st.Current++
		return w.setSeen(ctx, id, seenValue{etag: info.ETag, state: stCurrent})
	}
	if err := w.rollover(ctx, st); err != nil {
		return err
	}
	if err := w.room(ctx); err != nil {
		return err
	}
	batch, err := w.admit(ctx, id, info.ETag)
	if err != nil {
		return err
	}
	if err := w.add(ctx, id, batch, it, info.ETag, st); err != nil {
		return err
	}
	return w.rollFull(ctx, st)
}

// itemID is the item's ID in a rolling batch: the object and its version,
// so that an object changed twice in a day is two items, each recorded once.
func itemID(location, key, etag string) string {
	h := sha256.Sum256([]byte(etag))
	return jobs.ItemID(location, key) + "-" + hex.EncodeToString(h[:4])
}

func (w *Watcher) setSeen(ctx context.Context, id string, v seenValue) error {
	_, err := w.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, w.seenKey(), id, v.String())
		w.keep(ctx, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.cfg.Name, err)
	}
	return nil
}

// add queues the item in batch (idempotent) and marks it queued.
func (w *Watcher) add(ctx context.Context, id, batch string, it ingest.Item, etag string, st *Stats) error {
	b, err := w.cfg.Feed.Open(ctx, batch, w.cfg.Name, w.now())
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.cfg.Name, err)
	}
	if _, err := w.cfg.Feed.Add(ctx, b, it); err != nil {
		return fmt.Errorf("watch %s: %w", w.cfg.Name, err)
	}
	st.Added++
	w.log.InfoContext(ctx, "item added", "batch_id", batch, "source", it.Ref.URL(), "skip", it.Skip)
	return w.setSeen(ctx, id, seenValue{etag: etag, state: stQueued, batch: batch})
}

// state is the watch's current batch.
type state struct {
	batch, period string
	seq, count    int
}

func (w *Watcher) readState(ctx context.Context) (state, error) {
	m, err := w.cfg.Redis.HGetAll(ctx, w.stateKey()).Result()
	if err != nil {
		return state{}, fmt.Errorf("watch %s: read state: %w", w.cfg.Name, err)
	}
	s := state{batch: m["batch"], period: m["period"]}
	s.seq, _ = strconv.Atoi(m["seq"])
	s.count, _ = strconv.Atoi(m["count"])
	return s, nil
}

// room waits until the current batch has fewer than its bound of items
// in the queue (Spec.MaxQueued; zero: no bound). The objects not yet
// admitted wait in the inbox meanwhile: they are its pages.
func (w *Watcher) room(ctx context.Context) error {
	bound := w.cfg.Feed.Options().MaxQueued
	if bound <= 0 {
		return nil
	}
	every := cmp.Or(w.cfg.RoomEvery, time.Second)
	for {
		s, err := w.readState(ctx)
		if err != nil || s.batch == "" {
			return err
		}
		q, err := w.cfg.Feed.Queued(ctx, s.batch, s.count)
		if err != nil {
			return fmt.Errorf("watch %s: %w", w.cfg.Name, err)
		}
		if q < bound {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

func (w *Watcher) period() string { return w.now().In(w.cfg.Location).Format("20060102") }

// admit counts an object version in the current batch (opening one when
// there is none) and records that it was admitted there, in one
// transaction: a watcher that stops after this re-adds it on restart.
func (w *Watcher) admit(ctx context.Context, id, etag string) (string, error) {
	s, err := w.readState(ctx)
	if err != nil {
		return "", err
	}
	if s.batch == "" {
		p := w.period()
		seq := 1
		if s.period == p {
			seq = s.seq + 1
		}
		s = state{batch: w.batchID(p, seq), period: p, seq: seq}
		if _, err := w.cfg.Feed.Open(ctx, s.batch, w.cfg.Name, w.now()); err != nil {
			return "", fmt.Errorf("watch %s: %w", w.cfg.Name, err)
		}
		if err := w.cfg.Redis.HSet(ctx, w.stateKey(), "batch", s.batch, "period", p, "seq", seq, "count", 0).Err(); err != nil {
			return "", fmt.Errorf("watch %s: %w", w.cfg.Name, err)
		}
	}
	_, err = w.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, w.stateKey(), "count", 1)
		p.HSet(ctx, w.seenKey(), id, seenValue{etag: etag, state: stAdmitted, batch: s.batch}.String())
		w.keep(ctx, p)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("watch %s: admit: %w", w.cfg.Name, err)
	}
	return s.batch, nil
}

// batchID names a rolling batch: "<name>-<yyyymmdd>", with a sequence
// number when batches roll every N items.
func (w *Watcher) batchID(period string, seq int) string {
	if w.cfg.RollEvery > 0 {
		return fmt.Sprintf("%s-%s-%03d", w.cfg.Name, period, seq)
	}
	if seq > 1 {
		return fmt.Sprintf("%s-%s-%d", w.cfg.Name, period, seq)
	}
	return w.cfg.Name + "-" + period
}

// rollover seals the current batch when its day has ended.
func (w *Watcher) rollover(ctx context.Context, st *Stats) error {
	s, err := w.readState(ctx)
	if err != nil {
		return err
	}
	if s.batch == "" || s.period == w.period() {
		return nil
	}
	return w.seal(ctx, s, st)
}

// rollFull seals the current batch when it holds RollEvery items.
func (w *Watcher) rollFull(ctx context.Context, st *Stats) error {
	if w.cfg.RollEvery <= 0 {
		return nil
	}
	s, err := w.readState(ctx)
	if err != nil {
		return err
	}
	if s.batch == "" || s.count < w.cfg.RollEvery {
		return nil
	}
	return w.seal(ctx, s, st)
}

// seal closes batch s with its count and clears the current batch. Sealing
// twice (a watcher stopped in between) is harmless.
func (w *Watcher) seal(ctx context.Context, s state, st *Stats) error {
	if err := w.cfg.Feed.Seal(ctx, s.batch, s.count); err != nil {
		return fmt.Errorf("watch %s: seal %s: %w", w.cfg.Name, s.batch, err)
	}
	if err := w.cfg.Redis.HDel(ctx, w.stateKey(), "batch", "count").Err(); err != nil {
		return fmt.Errorf("watch %s: %w", w.cfg.Name, err)
	}
	st.Sealed = append(st.Sealed, s.batch)
	w.log.InfoContext(ctx, "batch sealed", "batch_id", s.batch, "total", s.count)
	return nil
}

// Current returns the open batch's ID and how many items it holds ("" when
// none is open).
func (w *Watcher) Current(ctx context.Context) (string, int, error) {
	s, err := w.readState(ctx)
	return s.batch, s.count, err
}

// Close seals the open batch now (instead of at midnight): for a watcher
// that is being retired, or tests.
func (w *Watcher) Close(ctx context.Context) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, err := w.readState(ctx)
	if err != nil || s.batch == "" {
		return "", err
	}
	var st Stats
	return s.batch, w.seal(ctx, s, &st)
}

// ErrLeaseLost ends Run when another watcher took over this watch.
var ErrLeaseLost = errors.New("watch: lease lost to another watcher")

// Run holds the watch's lease (waiting while another watcher holds it),
// then polls at the interval and handles events from src (nil: polling
// only) until ctx ends.
func (w *Watcher) Run(ctx context.Context, src EventSource) error {
	lost, err := lease.Acquire(ctx, w.cfg.Redis, w.LeaseKey(), lease.Holder(), jobs.LeaseTTL, "watcher of "+w.cfg.Name, w.log)
	if err != nil {
		return err
	}
	// The lease ends when parent does; a lost lease with parent still live
	// is a real loss. (The derived ctx below may be cancelled a moment after
	// parent, so it cannot tell the two apart.)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	var consumer sync.WaitGroup
	if src != nil {
		consumer.Go(func() { errc <- w.consume(ctx, src) })
	}
	defer consumer.Wait()
	defer cancel()
	w.log.InfoContext(ctx, "watching", "sources", w.cfg.Feed.Sources(), "out", w.cfg.Feed.Out(), "interval", w.cfg.Interval,
		"events", src != nil)
	poll := func() {
		st, err := w.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.ErrorContext(ctx, "poll failed: trying again at the next interval", "error", err)
			return
		}
		if st.Added > 0 || len(st.Sealed) > 0 {
			w.log.InfoContext(ctx, "poll", "listed", st.Seen, "added", st.Added, "sealed", st.Sealed)
		}
	}
	poll()
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	// Midnight comes between polls too: check the day every minute at least.
	day := time.NewTicker(min(w.cfg.Interval, time.Minute))
	defer day.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			if parent.Err() != nil {
				return nil
			}
			return ErrLeaseLost
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-t.C:
			poll()
		case <-day.C:
			if _, err := w.Tick(ctx); err != nil && ctx.Err() == nil {
				w.log.ErrorContext(ctx, "rollover failed", "error", err)
			}
		}
	}
}
