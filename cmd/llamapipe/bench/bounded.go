package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/storage"
)

// catalogStore is a listing made for the benchmark: n JPEG images, listed
// in key order, whose heads are a tiny JPEG. It writes nothing.
type catalogStore struct {
	loc string
	n   int
}

func (c catalogStore) key(i int) string { return fmt.Sprintf("products/%04d/IMG_%08d.jpg", i/1000, i) }

func (c catalogStore) Get(context.Context, string, *storage.Range) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(tinyJPEG)), nil
}

func (c catalogStore) Put(context.Context, string, io.Reader, int64, string) error {
	return errors.New("bench catalog: read-only")
}

func (c catalogStore) Stat(_ context.Context, key string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{Key: key, Size: 2_400_000, ETag: `"` + key + `"`}, nil
}

func (c catalogStore) List(_ context.Context, _ string, o storage.ListOptions) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		for i := range c.n {
			k := c.key(i)
			if k <= o.StartAfter {
				continue
			}
			if !yield(storage.ObjectInfo{Key: k, Size: 2_400_000 + int64(i), ETag: fmt.Sprintf(`"%032x"`, i)}, nil) {
				return
			}
		}
	}
}

func (c catalogStore) Delete(context.Context, string) error { return nil }
func (c catalogStore) Location() string                     { return c.loc }

// catalogDir makes the run folder name for a synthetic catalog (catalogStore):
// the run's base location and the catalog's URL under it (a folder that
// exists, for a local run).
func (b *bench) catalogDir(name string) (base, srcURL string, cleanup func(), err error) {
	base, cleanup, err = b.runDir(name)
	if err != nil {
		return "", "", nil, err
	}
	srcURL = base + "/catalog"
	if err := os.MkdirAll(srcURL, 0o755); err != nil && !strings.HasPrefix(base, "s3://") {
		cleanup()
		return "", "", nil, err
	}
	return base, srcURL, cleanup, nil
}

// bounded ingests a synthetic catalog of --catalog images twice, with no
// worker running: with --max-queued and without a bound, and reports Redis
// memory at its highest during each (sampled every 20 ms, and INFO's
// used_memory_peak).
func (b *bench) bounded(ctx context.Context) ([]row, error) {
	n := b.opts.Catalog
	base, srcURL, cleanup, err := b.catalogDir("bounded")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	open := func(ctx context.Context, loc string) (storage.Store, error) {
		if loc == srcURL {
			return catalogStore{loc: srcURL, n: n}, nil
		}
		return b.svc.Open(ctx, loc)
	}
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	var rows []row
	// No worker runs here: the batches' tasks stay queued, each in its own
	// queue, and are left there (deleting a million tasks outlasts Redis'
	// script time limit): use the private redis-server bench starts.
	for i, bound := range []int{b.opts.MaxQueued, 0} {
		queue := []string{jobs.QueueCritical, jobs.QueueNightly}[i]
		before, err := usedMemory(ctx, b.svc.Client)
		if err != nil {
			return nil, err
		}
		in := &ingest.Ingester{Open: open, Queue: client, Tracker: b.svc.Tracker, Logger: b.svc.Logger, Feeds: feed.New(b.svc.Client, "")}
		peakOf := b.samplePeak(ctx, before)
		start := time.Now()
		res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: base + fmt.Sprintf("/out-%d", bound),
			Task: jobs.TaskCaption, Queue: queue, MaxQueued: bound, Force: true}})
		took := time.Since(start)
		peakSampled := peakOf()
		if err != nil {
			return nil, err
		}
		peak, err := infoField(ctx, b.svc.Client, "used_memory_peak")
		if err != nil {
			return nil, err
		}
		name := "Redis at its highest, no bound"
		if bound > 0 {
			name = fmt.Sprintf("Redis at its highest, --max-queued %d", bound)
		}
		rows = append(rows, row{name, fmt.Sprintf("%.1f MB", float64(peakSampled-before)/1e6),
			fmt.Sprintf("used_memory growth over the ingest of %d items (%d to the queue or its pages), sampled every 20 ms; used_memory_peak %.1f MB; ingest %s",
				res.Total, res.Enqueued, float64(peak)/1e6, took.Round(time.Millisecond))})
	}
	return rows, nil
}

// samplePeak samples Redis' used_memory every 20 ms, from a floor of
// from, until the returned func is called; that returns the highest.
func (b *bench) samplePeak(ctx context.Context, from int64) (stop func() int64) {
	sctx, cancel := context.WithCancel(ctx)
	most := make(chan int64, 1)
	go func() {
		m := from
		for sctx.Err() == nil {
			if u, err := usedMemory(ctx, b.svc.Client); err == nil {
				m = max(m, u)
			}
			time.Sleep(20 * time.Millisecond)
		}
		most <- m
	}()
	return func() int64 { cancel(); return <-most }
}

func infoField(ctx context.Context, rdb redis.UniversalClient, field string) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO memory: no %s", field)
}
