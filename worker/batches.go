package worker

import (
	"context"
	"sync"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/storage"
)

// batchCache keeps the batch records item payloads are completed from
// (jobs/itemtask): a record never changes once created, so one read per
// batch and worker suffices.
type batchCache struct {
	mu sync.Mutex
	m  map[string]jobs.Batch
	// fed are the batches seen with a feed (jobs/feed).
	fed map[string]bool
}

// maxCachedBatches bounds the cache; it starts over when full.
const maxCachedBatches = 1024

func (c *batchCache) get(ctx context.Context, t Records, id string) (jobs.Batch, error) {
	c.mu.Lock()
	b, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := t.Get(ctx, id)
	if err != nil {
		return b, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedBatches {
		c.m, c.fed = map[string]jobs.Batch{}, map[string]bool{}
	}
	c.m[id] = b
	c.mu.Unlock()
	return b, nil
}

// decodeItem decodes an item task's payload of either version.
func (w *Worker) decodeItem(ctx context.Context, data []byte) (jobs.ItemPayload, error) {
	return itemtask.Decode(data, func(id string) (jobs.Batch, error) { return w.batches.get(ctx, w.cfg.Tracker, id) })
}

// askFeed asks a bounded batch's feed task to top its queue up, now that
// one of its items ended. Best effort: the feed's polls catch up.
func (w *Worker) askFeed(ctx context.Context, batch string) {
	if w.cfg.Feeds == nil {
		return
	}
	b, err := w.batches.get(ctx, w.cfg.Tracker, batch)
	if err != nil || b.MaxQueued == 0 {
		return
	}
	w.batches.mu.Lock()
	fed := w.batches.fed[batch]
	w.batches.mu.Unlock()
	if !fed {
		// Only a batch past its bound has a feed; a batch gets one while it
		// is listed, never loses it while it runs.
		if has, err := w.cfg.Feeds.Has(ctx, batch); err != nil || !has {
			return
		}
		w.batches.mu.Lock()
		if w.batches.fed != nil {
			w.batches.fed[batch] = true
		}
		w.batches.mu.Unlock()
	}
	if err := feed.Ask(ctx, w.client, batch, b.Queue, feed.Ended, 0); err != nil {
		w.log.DebugContext(ctx, "feed not asked", "batch_id", batch, "error", err.Error())
	}
}

// spiller moves a bounded batch's finished entries out of Redis, a page at
// a time, to its work area (a *jobs.Tracker: Tracker.Spill, jobs/spill).
type spiller interface {
	Spill(ctx context.Context, batch string, out storage.Store, size int, listed func(context.Context) (int, error)) (int, error)
}

var _ spiller = (*jobs.Tracker)(nil)

// spill runs after an item of batch is recorded: a bounded batch whose
// items hash holds 2×Config.SpillPage entries or more moves pages of them
// to its work area (one worker at a time; the others go on). Best effort:
// the entries stay in Redis when it fails, and the next record tries again.
// The hash is looked at after one record in spillEvery of this worker's
// (a round trip each time), so it may hold that many more per worker.
func (w *Worker) spill(ctx context.Context, batch string) {
	sp, ok := w.cfg.Tracker.(spiller)
	if !ok || w.cfg.SpillPage < 0 || w.records.Add(1)%spillEvery(w.cfg.SpillPage) != 0 {
		return
	}
	b, err := w.batches.get(ctx, w.cfg.Tracker, batch)
	if err != nil || b.MaxQueued == 0 {
		return
	}
	listed := func(ctx context.Context) (int, error) { // listing chunks spill once ingest has passed them
		if w.cfg.Feeds == nil {
			return 0, nil
		}
		st, _, err := w.cfg.Feeds.Get(ctx, batch)
		return st.Listed, err
	}
	out, err := w.stores.get(ctx, b.Out)
	if err == nil {
		var n int
		if n, err = sp.Spill(ctx, batch, out, w.cfg.SpillPage, listed); n > 0 {
			w.log.DebugContext(ctx, "finished entries moved to the work area", "batch_id", batch, "entries", n)
		}
	}
	if err != nil {
		w.log.WarnContext(ctx, "finished entries not moved to the work area", "batch_id", batch, "error", err.Error())
	}
}

// spillEvery is after how many records a worker looks whether a spill is
// due: about a 32nd of a page (a page of 1,000: every 31st record), every
// record for small pages.
func spillEvery(page int) int64 {
	if page <= 0 {
		page = spill.DefaultPageSize
	}
	return int64(max(1, page/32))
}
