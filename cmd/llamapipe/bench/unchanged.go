package bench

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// tinyJPEG is a valid 1×1 JPEG: catalog objects for the unchanged-run
// measurement, where only listing and bookkeeping cost anything.
var tinyJPEG = []byte{0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x08, 0x06, 0x06, 0x07, 0x06, 0x05, 0x08, 0x07, 0x07, 0x07, 0x09, 0x09, 0x08, 0x0a, 0x0c, 0x14, 0x0d, 0x0c, 0x0b, 0x0b, 0x0c, 0x19, 0x12, 0x13, 0x0f, 0x14, 0x1d, 0x1a, 0x1f, 0x1e, 0x1d, 0x1a, 0x1c, 0x1c, 0x20, 0x24, 0x2e, 0x27, 0x20, 0x22, 0x2c, 0x23, 0x1c, 0x1c, 0x28, 0x37, 0x29, 0x2c, 0x30, 0x31, 0x34, 0x34, 0x34, 0x1f, 0x27, 0x39, 0x3d, 0x38, 0x32, 0x3c, 0x2e, 0x33, 0x34, 0x32, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x2a, 0x9f, 0xff, 0xd9}

// countingClient counts the calls that reach the model.
type countingClient struct {
	llm.Client
	n atomic.Int64
}

func (c *countingClient) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	c.n.Add(1)
	return c.Client.Complete(ctx, req)
}

// unchanged measures a nightly re-run over a catalog whose images all have
// current captions: it writes --catalog images and one fingerprint marker
// per image (as a finished run leaves them), then times ingest + finalize
// with a worker running, and counts model calls (there must be none).
func (b *bench) unchanged(ctx context.Context) ([]row, error) {
	u, err := b.unchangedRun(ctx)
	if err != nil {
		return nil, err
	}
	return []row{
		{"catalog", fmt.Sprintf("%d images", u.n), fmt.Sprintf("every one with a current caption marker; written in %s (setup, not measured)", u.setup.Round(time.Millisecond))},
		{"store", storeKind(u.src), u.src},
		{"skipped as unchanged", fmt.Sprint(u.skipped), fmt.Sprintf("of %d items; %d queued", u.total, u.enqueued)},
		{"model calls", fmt.Sprint(u.calls), "must be 0"},
		{"ingest", u.ingest.Round(time.Millisecond).String(), "list catalog + list markers + record every item as skipped"},
		{"re-run to manifest", u.rerun.Round(time.Millisecond).String(), "ingest + finalize (manifest.jsonl and report.md written)"},
		{"listings alone", u.listings.Round(time.Millisecond).String(), "one listing of the catalog and one of the markers, one after the other (the reference)"},
		{"CPU", u.cpu.Round(time.Millisecond).String(), "user+sys of this process (ingest, worker, Redis client)"},
	}, nil
}

// unchangedResult is what one unchanged re-run measured.
type unchangedResult struct {
	n                       int
	src                     string
	setup                   time.Duration
	skipped, total          int
	enqueued                int
	calls                   int64
	ingest, rerun, listings time.Duration
	cpu                     time.Duration
}

func (b *bench) unchangedRun(ctx context.Context) (unchangedResult, error) {
	var u unchangedResult
	n := b.opts.Catalog
	if n < 1 {
		return u, usage("--catalog must be at least 1")
	}
	base, cleanup, err := b.runDir("unchanged")
	if err != nil {
		return u, err
	}
	defer cleanup()
	srcURL, outURL := base+"/catalog", base+"/captions"
	open := b.svc.Open
	src, err := open(ctx, srcURL)
	if err != nil {
		return u, err
	}
	out, err := open(ctx, outURL)
	if err != nil {
		return u, err
	}
	if eb, ok := src.(interface{ EnsureBucket(context.Context) error }); ok {
		if err := eb.EnsureBucket(ctx); err != nil {
			return u, err
		}
	}
	model := &countingClient{Client: offline.New(offline.Options{})}
	prof := model.Profile()
	pv, err := prompts.TaskVersion(jobs.TaskCaption)
	if err != nil {
		return u, err
	}
	fmt.Fprintf(b.svc.Progress, "llamapipe: bench: writing %d catalog images and their fingerprint markers under %s\n", n, base)
	t0 := time.Now()
	if err := parallel(ctx, n, 32, func(i int) error {
		key := fmt.Sprintf("sku%07d/front.jpg", i)
		// Setup, not measured: nothing here needs to survive a power loss.
		return storage.PutVolatile(ctx, src, key, bytes.NewReader(tinyJPEG), int64(len(tinyJPEG)), "image/jpeg")
	}); err != nil {
		return u, err
	}
	var infos []storage.ObjectInfo
	for info, err := range src.List(ctx, "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			return u, err
		}
		infos = append(infos, info)
	}
	if err := parallel(ctx, len(infos), 32, func(i int) error {
		fp := fingerprint.Of(infos[i].ETag, jobs.TaskCaption, pv, prof.Model, jobs.Options{Language: "en"})
		return storage.PutVolatile(ctx, out, fingerprint.Key(infos[i].Key, jobs.TaskCaption, fp), bytes.NewReader(nil), 0, "")
	}); err != nil {
		return u, err
	}
	setup := time.Since(t0)
	// The reference: what the re-run cannot do without, one listing of the
	// catalog and one of the markers.
	t1 := time.Now()
	for _, l := range []struct {
		st     storage.Store
		prefix string
	}{{src, ""}, {out, fingerprint.Prefix}} {
		for _, err := range l.st.List(ctx, l.prefix, storage.ListOptions{Recursive: true}) {
			if err != nil {
				return u, err
			}
		}
	}
	u.listings = time.Since(t1)

	w, err := worker.New(worker.Config{Redis: b.svc.Redis, Tracker: b.svc.Tracker, Open: open, Model: model, Logger: b.svc.Logger, Concurrency: 4})
	if err != nil {
		return u, err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()

	// --cpuprofile and the others cover the re-run (ingest to manifest).
	stopAll, err := startProfiles(b.opts.CPUProfile, b.opts.MemProfile, b.opts.Trace)
	if err != nil {
		return u, err
	}
	stopProfiles := sync.OnceFunc(stopAll)
	defer stopProfiles()
	start := time.Now()
	cpu0 := cpuTime()
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: b.svc.Tracker, Logger: b.svc.Logger, Feeds: feed.New(b.svc.Client, "")}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: outURL, Task: jobs.TaskCaption,
		Provider: prof.Provider, Model: prof.Model, Options: jobs.Options{Language: "en"}, MaxQueued: b.opts.MaxQueued}})
	if err != nil {
		return u, err
	}
	ingested := time.Since(start)
	for {
		cnt, err := b.svc.Tracker.Counts(ctx, res.BatchID)
		if err != nil {
			return u, err
		}
		if cnt.Finalized {
			break
		}
		select {
		case <-ctx.Done():
			return u, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	u.rerun = time.Since(start)
	u.cpu = cpuTime() - cpu0
	stopProfiles()
	u.n, u.src, u.setup, u.calls, u.ingest = n, srcURL, setup, model.n.Load(), ingested
	u.skipped, u.total, u.enqueued = res.Skipped, res.Total, res.Enqueued
	return u, nil
}

func storeKind(url string) string {
	if strings.HasPrefix(url, "s3://") {
		return "S3"
	}
	return "local folder"
}

// parallel runs fn(0..n-1) on g goroutines, stopping at the first error.
func parallel(ctx context.Context, n, g int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
