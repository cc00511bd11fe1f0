package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// spillRuns runs a synthetic catalog of --catalog images (bounded's
// listing: nothing to write first) through workers with the offline model,
// as a batch bounded by --max-queued, twice: with finished entries spilled
// to the batch's work area (jobs/spill, pages of 1,000) and without. It
// reports Redis' used_memory growth at its highest (sampled every 20 ms)
// and the items hash's fields at the end of each.
func (b *bench) spillRuns(ctx context.Context) ([]row, error) {
	n := b.opts.Catalog
	base, srcURL, cleanup, err := b.catalogDir("spill")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	open := func(ctx context.Context, loc string) (storage.Store, error) {
		if loc == srcURL {
			return workCatalog{catalogStore{loc: srcURL, n: n}}, nil
		}
		return b.svc.Open(ctx, loc)
	}
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	var rows []row
	for _, page := range []int{0, -1} {
		before, err := usedMemory(ctx, b.svc.Client)
		if err != nil {
			return nil, err
		}
		feeds := feed.New(b.svc.Client, "")
		in := &ingest.Ingester{Open: open, Queue: client, Tracker: b.svc.Tracker, Logger: b.svc.Logger, Feeds: feeds}
		w, err := worker.New(worker.Config{Redis: b.svc.Redis, Tracker: b.svc.Tracker, Open: open, Model: offline.New(offline.Options{}),
			Logger: b.svc.Logger, Concurrency: b.conc, Feeds: feeds, SpillPage: page,
			Handlers: map[string]asynq.Handler{feed.TypeFeed: asynq.HandlerFunc(in.TopUp)}})
		if err != nil {
			return nil, err
		}
		wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		peakOf := b.samplePeak(ctx, before)
		start := time.Now()
		res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: base + fmt.Sprintf("/out%d", page),
			Task: jobs.TaskCaption, MaxQueued: b.opts.MaxQueued, Force: true}})
		for err == nil {
			var c jobs.Counts
			if c, err = b.svc.Tracker.Counts(ctx, res.BatchID); err != nil || c.Finalized {
				break
			}
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		took := time.Since(start)
		most := peakOf()
		stop()
		<-done
		if err != nil {
			return nil, err
		}
		fields, err := b.svc.Client.HLen(ctx, jobs.BatchItemsKey("", res.BatchID)).Result()
		if err != nil {
			return nil, err
		}
		name := "Redis at its highest, workers, entries spilled"
		if page < 0 {
			name = "Redis at its highest, workers, no spilling"
		}
		rows = append(rows, row{name, fmt.Sprintf("%.1f MB", float64(most-before)/1e6),
			fmt.Sprintf("used_memory growth while %d items ran through workers (offline model, --max-queued %d, %d slots), sampled every 20 ms; the items hash holds %d fields at the end; %s (%.0f items/s)",
				res.Total, b.opts.MaxQueued, b.conc, fields, took.Round(time.Second), float64(res.Total)/took.Seconds())})
	}
	return rows, nil
}

// workCatalog is the catalog as workers read it: an object's Stat says
// what its listing said (a worker checks its source did not change).
type workCatalog struct{ catalogStore }

func (c workCatalog) Stat(_ context.Context, key string) (storage.ObjectInfo, error) {
	var d, i int
	if _, err := fmt.Sscanf(key, "products/%04d/IMG_%08d.jpg", &d, &i); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("bench catalog: %s: %w", key, storage.ErrNotExist)
	}
	return storage.ObjectInfo{Key: key, Size: 2_400_000 + int64(i), ETag: fmt.Sprintf(`"%032x"`, i)}, nil
}
