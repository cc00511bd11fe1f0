package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// benchCommand measures the pipeline on one machine against the fake model
// server (or the offline provider), and prints a Markdown table.
func benchCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure throughput, latency, memory and CPU on a synthetic batch against a built-in fake model server",
		Description: "Generates N JPEG photos and M text/Markdown documents, ingests each set with no worker running " +
			"(ingest rate), then processes it with K in-process workers of concurrency C against an OpenAI-compatible " +
			"fake server on a loopback port (--latency, --jitter, --fault-rate) or the offline provider, and waits " +
			"for the manifest. Before that it enqueues --enqueue-tasks synthetic tasks into a scratch queue to measure " +
			"the enqueue rate and Redis memory per queued task, then deletes them. Without --redis-url a private " +
			"redis-server is started. CPU and peak RSS are this process's: workers and fake server together.",
		Flags: concat(workerFlags(), []cli.Flag{
			&cli.IntFlag{Name: "photos", Value: 32, Usage: "number of JPEG photos to generate", Sources: env("BENCH_PHOTOS")},
			&cli.StringFlag{Name: "photo-size", Value: "1600x1200", Usage: "photo size WIDTHxHEIGHT in pixels (24 MP: 6000x4000)", Sources: env("BENCH_PHOTO_SIZE")},
			&cli.IntFlag{Name: "docs", Value: 16, Usage: "number of text/Markdown documents to generate", Sources: env("BENCH_DOCS")},
			&cli.IntFlag{Name: "pages", Value: 5, Usage: "pages per document (about 3,000 characters each)", Sources: env("BENCH_PAGES")},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "in-process workers (asynq servers), each with --concurrency", Sources: env("BENCH_WORKERS")},
			&cli.StringFlag{Name: "provider", Value: "openai", Usage: "openai (the built-in fake server) or offline", Sources: env("BENCH_PROVIDER")},
			&cli.DurationFlag{Name: "latency", Value: 200 * time.Millisecond, Usage: "fake server: time to answer each request", Sources: env("BENCH_LATENCY")},
			&cli.DurationFlag{Name: "jitter", Value: 20 * time.Millisecond, Usage: "fake server: latency varies uniformly by ± this", Sources: env("BENCH_JITTER")},
			&cli.FloatFlag{Name: "fault-rate", Usage: "fake server: share of requests answered 429, 500 or garbage (split evenly)", Sources: env("BENCH_FAULT_RATE")},
			&cli.FloatFlag{Name: "hang-rate", Usage: "fake server: share of requests that hang until --model-timeout", Sources: env("BENCH_HANG_RATE")},
			&cli.DurationFlag{Name: "model-timeout", Value: 30 * time.Second, Usage: "client timeout of one model request", Sources: env("BENCH_MODEL_TIMEOUT")},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the generated inputs and fault draws (0: a new one each run)", Sources: env("BENCH_SEED")},
			&cli.StringFlag{Name: "out", Usage: "where inputs and results go: a folder or s3://bucket/prefix (a run folder is made inside); empty: a temporary folder, removed afterwards", Sources: env("BENCH_OUT")},
			&cli.BoolFlag{Name: "keep", Usage: "keep the temporary folder", Sources: env("BENCH_KEEP")},
			&cli.StringFlag{Name: "measure", Value: "all", Usage: "all, pipeline (ingest and process), enqueue (queue rate and Redis memory only) or unchanged (a nightly re-run over an unchanged catalog of --catalog images)", Sources: env("BENCH_MEASURE")},
			&cli.IntFlag{Name: "catalog", Value: 10000, Usage: "catalog size for --measure unchanged", Sources: env("BENCH_CATALOG")},
			&cli.IntFlag{Name: "enqueue-tasks", Value: 10000, Usage: "synthetic tasks enqueued to measure the enqueue rate and Redis memory per task", Sources: env("BENCH_ENQUEUE_TASKS")},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the processing phases to this file (go tool pprof)", Sources: env("BENCH_CPUPROFILE")},
			&cli.StringFlag{Name: "memprofile", Usage: "write a heap profile (allocations of the processing phases: go tool pprof -sample_index=alloc_space) to this file", Sources: env("BENCH_MEMPROFILE")},
			&cli.StringFlag{Name: "trace", Usage: "write an execution trace of the processing phases to this file (go tool trace): shows waits on Redis, disk and the model", Sources: env("BENCH_TRACE")},
			&cli.IntFlag{Name: "enqueue-goroutines", Value: 16, Usage: "goroutines enqueueing at once", Sources: env("BENCH_ENQUEUE_GOROUTINES")},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.String("memprofile") != "" {
				// Sample nothing until processing begins (startProfiles):
				// the generator's allocations are not the pipeline's.
				runtime.MemProfileRate = 0
			}
			b, err := newBench(cmd, stderr)
			if err != nil {
				return err
			}
			return b.run(ctx, cmd, stdout, stderr)
		},
	}
}

type bench struct {
	photos, docs, pages int
	w, h                int
	workers, conc       int
	provider            string
	latency, jitter     time.Duration
	faultRate, hangRate float64
	seed                int64
	nonce               string // this run's: makes inputs unique, so no cache from an earlier run answers
	measure             string
	enqTasks, enqG      int
}

func newBench(cmd *cli.Command, _ io.Writer) (*bench, error) {
	usage := func(format string, args ...any) error {
		return &exitError{code: exitUsage, msg: "bench: " + fmt.Sprintf(format, args...)}
	}
	b := &bench{
		photos: cmd.Int("photos"), docs: cmd.Int("docs"), pages: cmd.Int("pages"),
		workers: cmd.Int("workers"), conc: cmd.Int("concurrency"), provider: cmd.String("provider"),
		latency: cmd.Duration("latency"), jitter: cmd.Duration("jitter"),
		faultRate: cmd.Float("fault-rate"), hangRate: cmd.Float("hang-rate"),
		seed: cmd.Int64("seed"), measure: cmd.String("measure"),
		enqTasks: cmd.Int("enqueue-tasks"), enqG: cmd.Int("enqueue-goroutines"),
	}
	var err error
	if b.w, b.h, err = parsePhotoSize(cmd.String("photo-size")); err != nil {
		return nil, usage("--photo-size: %v", err)
	}
	switch {
	case b.photos < 0 || b.docs < 0 || b.photos+b.docs == 0 && b.measure != "enqueue" && b.measure != "unchanged":
		return nil, usage("--photos and --docs must not be negative, and not both zero")
	case b.pages < 1:
		return nil, usage("--pages must be at least 1")
	case b.workers < 1 || b.conc < 1:
		return nil, usage("--workers and --concurrency must be at least 1")
	case b.provider != llm.ProviderOpenAI && b.provider != llm.ProviderOffline:
		return nil, usage("--provider %q: use openai (the built-in fake server) or offline", b.provider)
	case b.faultRate < 0 || b.faultRate > 1 || b.hangRate < 0 || b.hangRate > 1:
		return nil, usage("--fault-rate and --hang-rate are shares between 0 and 1")
	case b.measure != "all" && b.measure != "pipeline" && b.measure != "enqueue" && b.measure != "unchanged":
		return nil, usage("--measure %q: use all, pipeline, enqueue or unchanged", b.measure)
	case b.enqTasks < 1 || b.enqG < 1:
		return nil, usage("--enqueue-tasks and --enqueue-goroutines must be at least 1")
	}
	if b.seed == 0 {
		b.seed = time.Now().UnixNano()
	}
	b.nonce = randomHex(8)
	return b, nil
}

func parsePhotoSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w < 16 || h < 16 || w > 20000 || h > 20000 {
		return 0, 0, fmt.Errorf("%q: use WIDTHxHEIGHT, each 16 to 20000 pixels", s)
	}
	return w, h, nil
}

// row is one line of the result table.
type row struct{ metric, value, note string }

func (b *bench) run(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer) error {
	log, err := newLogger(cmd, stderr, slog.LevelError)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cmd, true, stderr)
	if err != nil {
		return err
	}
	defer c.Close()

	var rows []row
	if b.measure == "unchanged" {
		r, err := b.unchanged(ctx, cmd, c, log, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "| metric | value | notes |\n|---|---|---|\n")
		for _, x := range r {
			fmt.Fprintf(stdout, "| %s | %s | %s |\n", x.metric, x.value, x.note)
		}
		return nil
	}
	if b.measure != "pipeline" {
		r, err := b.measureEnqueue(ctx, c)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	var failed int
	if b.measure != "enqueue" {
		r, f, err := b.pipeline(ctx, cmd, c, log, stderr)
		if err != nil {
			return err
		}
		rows, failed = append(r, rows...), f
	}
	fmt.Fprintf(stdout, "| metric | value | notes |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(stdout, "| %s | %s | %s |\n", r.metric, r.value, r.note)
	}
	if failed > 0 {
		return &exitError{code: exitFailed, msg: fmt.Sprintf("bench: %d items failed", failed)}
	}
	return nil
}

// measureEnqueue enqueues synthetic caption tasks (payloads as ingest makes
// them) into a scratch queue no worker serves, from several goroutines, and
// measures the rate and Redis's used_memory growth; then deletes the queue.
func (b *bench) measureEnqueue(ctx context.Context, c *conn) ([]row, error) {
	queue := "llamapipe-bench-" + randomHex(4)
	batch := ingest.NewBatchID(time.Now())
	tasks := make([]*asynq.Task, b.enqTasks)
	payloadBytes := 0
	for i := range tasks {
		key := fmt.Sprintf("products/%06d/IMG_%06d.jpg", i/1000, i)
		loc := "s3://catalog-images/inbox/2026-11-25"
		p := jobs.ItemPayload{Batch: batch, Item: jobs.ItemID(loc, key),
			Source: jobs.Ref{Location: loc, Key: key, ETag: `"` + randomHex(16) + `"`, Size: 2_400_000 + int64(i)},
			Type:   "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: "s3://catalog-images/captions/2026-11-25",
			ResultBase: key, Options: jobs.Options{Language: "en"}, Fingerprint: randomHex(32)}
		t, err := jobs.NewItemTask(p, queue, 5)
		if err != nil {
			return nil, err
		}
		tasks[i] = t
		payloadBytes += len(t.Payload())
	}
	client := asynq.NewClient(c.opt)
	defer client.Close()
	insp := asynq.NewInspector(c.opt)
	defer insp.Close()
	defer func() { _ = insp.DeleteQueue(queue, true) }()

	before, err := usedMemory(ctx, c)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	errs := make(chan error, b.enqG)
	var next sync.Mutex
	idx := 0
	for range b.enqG {
		go func() {
			for {
				next.Lock()
				i := idx
				idx++
				next.Unlock()
				if i >= len(tasks) {
					errs <- nil
					return
				}
				if _, err := client.EnqueueContext(ctx, tasks[i]); err != nil {
					errs <- fmt.Errorf("enqueue: %w", err)
					return
				}
			}
		}()
	}
	var firstErr error
	for range b.enqG {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	after, err := usedMemory(ctx, c)
	if err != nil {
		return nil, err
	}
	perTask := "n/a"
	note := fmt.Sprintf("used_memory growth ÷ %d pending tasks (payload %d bytes)", b.enqTasks, payloadBytes/b.enqTasks)
	if after > before {
		perTask = fmt.Sprintf("%d B", (after-before)/int64(b.enqTasks))
	} else {
		note = "Redis memory did not grow: it is shared with other work; measure against a private Redis"
	}
	return []row{
		{"enqueue rate", fmt.Sprintf("%.0f tasks/s", float64(b.enqTasks)/elapsed.Seconds()),
			fmt.Sprintf("%d tasks, %d goroutines, one asynq client, no workers", b.enqTasks, b.enqG)},
		{"Redis per queued task", perTask, note},
	}, nil
}

func usedMemory(ctx context.Context, c *conn) (int64, error) {
	info, err := c.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis INFO memory: no used_memory")
}

// batchRun is what one measured batch did.
type batchRun struct {
	kind           string
	items, done    int
	failed         int
	ingest         time.Duration // ingest with no worker running
	work           time.Duration // workers started → every item ended
	finalize       time.Duration // every item ended → manifest written
	cpu            time.Duration // process CPU (user+sys) while working
	model          fakeserver.Stats
	durations      []int64 // manifest duration_ms of each item
	extraAttempts  int
	bytes, objects int64
}

func (b *bench) pipeline(ctx context.Context, cmd *cli.Command, c *conn, log *slog.Logger, stderr io.Writer) ([]row, int, error) {
	// Where inputs and results go.
	base := cmd.String("out")
	if base == "" {
		dir, err := os.MkdirTemp("", "llamapipe-bench-")
		if err != nil {
			return nil, 0, fmt.Errorf("bench: %w", err)
		}
		if !cmd.Bool("keep") {
			defer os.RemoveAll(dir)
		} else {
			fmt.Fprintf(stderr, "llamapipe: bench: inputs and results kept in %s\n", dir)
		}
		base = dir
	} else {
		base = strings.TrimRight(base, "/") + "/bench-" + ingest.NewBatchID(time.Now())
		fmt.Fprintf(stderr, "llamapipe: bench: inputs and results in %s\n", base)
	}
	open := opener(cmd)

	photoBytes, err := b.generatePhotos(ctx, open, base+"/input/photos")
	if err != nil {
		return nil, 0, err
	}
	docBytes, err := b.generateDocs(ctx, open, base+"/input/documents")
	if err != nil {
		return nil, 0, err
	}
	// Peak RSS from here on: the generator's buffers are not the pipeline's.
	runtime.GC()
	debug.FreeOSMemory()
	rssReset := resetPeakRSS()
	baseRSS, _ := procStatus("VmRSS:")

	// The model.
	var model llm.Client
	var fs *fakeserver.Server
	if b.provider == llm.ProviderOffline {
		model = offline.New(offline.Options{ContextTokens: 131072})
	} else {
		key := "sk-bench-" + randomHex(12)
		fs = fakeserver.New(fakeserver.Options{
			Latency: b.latency, Jitter: b.jitter,
			Rate429: b.faultRate / 3, Rate500: b.faultRate / 3, RateGarbage: b.faultRate / 3, RateHang: b.hangRate,
			Seed: b.seed, APIKey: key,
		})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, fmt.Errorf("bench: fake model server: %w", err)
		}
		hs := &http.Server{Handler: fs, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(l) }()
		defer func() {
			fs.Close()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
		conns := b.workers * b.conc
		model, err = openai.New(openai.Options{
			Profile: llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: "http://" + l.Addr().String() + "/v1", Model: fakeserver.DefaultModel,
				ContextTokens: 131072, MaxOutputTokens: 4096, MaxImages: 5, MaxImageBytes: 20 << 20,
				ImageFormats: []string{"image/jpeg", "image/png", "image/webp", "image/gif"}, TextOnly: true, JSONSchema: true},
			APIKey:     key,
			HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}},
			Timeout:    cmd.Duration("model-timeout"),
		})
		if err != nil {
			return nil, 0, err
		}
	}

	stopProfiles, err := startProfiles(cmd.String("cpuprofile"), cmd.String("memprofile"), cmd.String("trace"))
	if err != nil {
		return nil, 0, err
	}
	defer stopProfiles()

	var runs []batchRun
	for _, set := range []struct {
		kind  string
		bytes int64
		n     int
	}{{"photos", photoBytes, b.photos}, {"documents", docBytes, b.docs}} {
		if set.n == 0 {
			continue
		}
		r, err := b.batch(ctx, cmd, c, model, fs, log, base+"/input/"+set.kind, base+"/results/"+set.kind)
		if err != nil {
			return nil, 0, err
		}
		r.kind, r.bytes, r.objects = set.kind, set.bytes, int64(set.n)
		runs = append(runs, r)
		fmt.Fprintf(stderr, "llamapipe: bench: %s: %d/%d done in %s\n", set.kind, r.done, r.items, r.work.Round(time.Millisecond))
	}
	rss, rssErr := procStatus("VmHWM:")
	return b.rows(runs, rss, baseRSS, rssErr, rssReset), sumFailed(runs), nil
}

// startProfiles starts a CPU profile, heap profiling and an execution trace
// when asked; the returned func stops them and writes the files.
func startProfiles(cpuFile, memFile, traceFile string) (func(), error) {
	var stops []func()
	stop := func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
	}
	if memFile != "" {
		f, err := os.Create(memFile)
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--memprofile: %v", err)}
		}
		// Allocations from now on only (sampling was off until here).
		runtime.MemProfileRate = 64 << 10
		stops = append(stops, func() {
			runtime.GC() // the profile is as of the last GC
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			_ = f.Close()
		})
	}
	if cpuFile != "" {
		f, err := os.Create(cpuFile)
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--cpuprofile: %v", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("bench: CPU profile: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); _ = f.Close() })
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			stop()
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--trace: %v", err)}
		}
		if err := trace.Start(f); err != nil {
			_ = f.Close()
			stop()
			return nil, fmt.Errorf("bench: trace: %w", err)
		}
		stops = append(stops, func() { trace.Stop(); _ = f.Close() })
	}
	return stop, nil
}

func sumFailed(runs []batchRun) int {
	n := 0
	for _, r := range runs {
		n += r.failed + (r.items - r.done - r.failed)
	}
	return n
}

// batch ingests one folder with no worker running, then processes it with
// fresh workers until every item ended and the manifest is written.
func (b *bench) batch(ctx context.Context, cmd *cli.Command, c *conn, model llm.Client, fs *fakeserver.Server, log *slog.Logger, src, out string) (batchRun, error) {
	var r batchRun
	client := asynq.NewClient(c.opt)
	defer client.Close()
	in := &ingest.Ingester{Open: opener(cmd), Queue: client, Tracker: c.tracker, Logger: log}
	start := time.Now()
	res, err := in.Run(ctx, ingest.Options{Sources: []string{src}, Out: out, Task: jobs.TaskAuto, Force: true,
		Job: jobs.Options{Language: "en"}, Provider: model.Profile().Provider, Model: model.Profile().Model})
	if err != nil {
		return r, err
	}
	r.ingest = time.Since(start)
	r.items = res.Total

	var before fakeserver.Stats
	if fs != nil {
		before = fs.Stats()
	}
	cpu0 := cpuTime()
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	werrs := make(chan error, b.workers)
	defer func() {
		stop()
		wg.Wait()
	}()
	start = time.Now()
	for range b.workers {
		cfg, err := workerConfig(cmd, c, model, log)
		if err != nil {
			return r, err
		}
		w, err := worker.New(cfg)
		if err != nil {
			return r, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(wctx); err != nil {
				werrs <- err
			}
		}()
	}
	ended, finalized := time.Time{}, time.Time{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for finalized.IsZero() {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case err := <-werrs:
			return r, err
		case <-tick.C:
		}
		cnt, err := c.tracker.Counts(ctx, res.BatchID)
		if err != nil {
			return r, err
		}
		if cnt.Fatal != "" {
			return r, &exitError{code: exitFailed, msg: "bench: batch stopped: " + cnt.Fatal}
		}
		if ended.IsZero() && cnt.Complete() {
			ended = time.Now()
			r.cpu = cpuTime() - cpu0
			if fs != nil {
				r.model = subStats(fs.Stats(), before)
			}
		}
		if cnt.Finalized {
			finalized = time.Now()
		}
	}
	r.work, r.finalize = ended.Sub(start), finalized.Sub(ended)
	entries, err := c.tracker.Entries(ctx, res.BatchID)
	if err != nil {
		return r, err
	}
	for _, e := range entries {
		switch e.Status {
		case jobs.StatusDone:
			r.done++
			r.durations = append(r.durations, e.DurationMS)
		case jobs.StatusFailed:
			r.failed++
		}
		r.extraAttempts += max(e.Attempts-1, 0)
	}
	return r, nil
}

func subStats(a, b fakeserver.Stats) fakeserver.Stats {
	return fakeserver.Stats{
		Requests: a.Requests - b.Requests, OK: a.OK - b.OK, RateLimited: a.RateLimited - b.RateLimited,
		ServerErrors: a.ServerErrors - b.ServerErrors, Hangs: a.Hangs - b.Hangs, Garbage: a.Garbage - b.Garbage,
		BadRequests: a.BadRequests - b.BadRequests, Unauthorized: a.Unauthorized - b.Unauthorized, Canceled: a.Canceled - b.Canceled,
		Images: a.Images - b.Images, PromptTokens: a.PromptTokens - b.PromptTokens, CompletionTokens: a.CompletionTokens - b.CompletionTokens,
		MaxInFlight: a.MaxInFlight, Busy: a.Busy - b.Busy,
	}
}

func (b *bench) rows(runs []batchRun, rss, baseRSS int64, rssErr error, rssReset bool) []row {
	var rows []row
	add := func(metric, value, note string) { rows = append(rows, row{metric, value, note}) }
	model := "offline provider (in process)"
	if b.provider == llm.ProviderOpenAI {
		model = fmt.Sprintf("fake OpenAI-compatible server on loopback: latency %s ± %s, faults %.0f%% (429/500/garbage), hangs %.0f%%",
			b.latency, b.jitter, b.faultRate*100, b.hangRate*100)
	}
	add("setup", fmt.Sprintf("%d worker(s) × concurrency %d", b.workers, b.conc), model+fmt.Sprintf("; seed %d", b.seed))
	var items, done, objects, requests int64
	var work, cpu time.Duration
	var all []int64
	for _, r := range runs {
		items += int64(r.items)
		done += int64(r.done)
		work += r.work
		cpu += r.cpu
		requests += r.model.Requests
		all = append(all, r.durations...)
		objects += r.objects
		what := fmt.Sprintf("%d JPEG %dx%d", r.objects, b.w, b.h)
		if r.kind == "documents" {
			what = fmt.Sprintf("%d txt/md × %d pages", r.objects, b.pages)
		}
		add("input: "+r.kind, what, fmt.Sprintf("%s total, generated in process", humanBytes(r.bytes)))
	}
	add("items done", fmt.Sprintf("%d / %d", done, items), fmt.Sprintf("%d extra attempts (retries)", sumExtra(runs)))
	for _, r := range runs {
		add("ingest rate: "+r.kind, fmt.Sprintf("%.0f items/s", float64(r.items)/r.ingest.Seconds()),
			fmt.Sprintf("list + sniff + enqueue of %d items in %s, no workers running", r.items, r.ingest.Round(time.Millisecond)))
	}
	for _, r := range runs {
		add("throughput: "+r.kind, fmt.Sprintf("%.2f items/s", float64(r.done)/r.work.Seconds()),
			fmt.Sprintf("%d items in %s from worker start to the last item; manifest %s later", r.done, r.work.Round(time.Millisecond), r.finalize.Round(time.Millisecond)))
	}
	if len(runs) > 1 {
		add("throughput: all", fmt.Sprintf("%.2f items/s", float64(done)/work.Seconds()), "both batches, processing time only")
	}
	if b.provider == llm.ProviderOpenAI && work > 0 {
		ideal := float64(b.workers*b.conc) / b.latency.Seconds()
		label := "C ÷ latency"
		if b.workers > 1 {
			label = "workers × C ÷ latency"
		}
		var faults, maxIn int64
		for _, r := range runs {
			faults += r.model.Faults()
			maxIn = max(maxIn, r.model.MaxInFlight)
		}
		add("model requests/s", fmt.Sprintf("%.1f", float64(requests)/work.Seconds()),
			fmt.Sprintf("ideal %s = %.1f (%.0f%%); %d requests, %d faults, at most %d at once",
				label, ideal, 100*float64(requests)/work.Seconds()/ideal, requests, faults, maxIn))
	}
	for _, r := range runs {
		p50, p99 := percentile(r.durations, 50), percentile(r.durations, 99)
		add("item latency p50 / p99: "+r.kind, fmt.Sprintf("%d / %d ms", p50, p99), "manifest duration_ms of done items (the final attempt; not queue wait or retry delays)")
	}
	if len(runs) > 1 {
		add("item latency p50 / p99: all", fmt.Sprintf("%d / %d ms", percentile(all, 50), percentile(all, 99)), "")
	}
	includes := "includes the fake server"
	if b.provider == llm.ProviderOffline {
		includes = "includes the offline model's work"
	}
	for _, r := range runs {
		switch r.kind {
		case "photos":
			add("CPU per image", fmt.Sprintf("%.4f s", r.cpu.Seconds()/float64(max(r.done, 1))), "user+sys of the process while the photo batch ran ("+includes+")")
		case "documents":
			add("CPU per page", fmt.Sprintf("%.5f s", r.cpu.Seconds()/float64(max(r.done, 1)*b.pages)), fmt.Sprintf("%.4f s per document", r.cpu.Seconds()/float64(max(r.done, 1))))
		}
	}
	if done > 0 {
		add("CPU per item", fmt.Sprintf("%.4f s", cpu.Seconds()/float64(done)), "all batches")
	}
	note := fmt.Sprintf("VmHWM of this process (workers, fake server, Redis client) after input generation; %s when processing began", humanBytes(baseRSS))
	if !rssReset {
		note = "VmHWM of this process, including input generation (the peak could not be reset)"
	}
	if rssErr != nil {
		add("peak RSS", "n/a", rssErr.Error())
	} else {
		add("peak RSS", humanBytes(rss), note)
	}
	return rows
}

func sumExtra(runs []batchRun) int {
	n := 0
	for _, r := range runs {
		n += r.extraAttempts
	}
	return n
}

func percentile(ms []int64, p int) int64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func humanBytes(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a size field (VmHWM:, VmRSS:) of /proc/self/status
// (Linux), in bytes.
func procStatus(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no %s in /proc/self/status", field)
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0+).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// generatePhotos writes b.photos JPEGs (quality 90) with photo-like texture
// — gradients, soft shapes and sensor noise — so they compress like
// photos, not like flat colour. It returns the bytes written.
func (b *bench) generatePhotos(ctx context.Context, open func(context.Context, string) (storage.Store, error), loc string) (int64, error) {
	if b.photos == 0 {
		return 0, nil
	}
	st, err := open(ctx, loc)
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", loc, err)
	}
	var total int64
	var mu sync.Mutex
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	// One photo at a time per core: a 24 MP RGBA is 96 MB.
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				data, err := photo(b.w, b.h, uint64(b.seed), uint64(i), b.nonce)
				if err == nil {
					err = st.Put(ctx, fmt.Sprintf("IMG_%05d.jpg", i), bytes.NewReader(data), int64(len(data)), "image/jpeg")
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("bench: photo %d: %w", i, err):
					default:
					}
					continue
				}
				mu.Lock()
				total += int64(len(data))
				mu.Unlock()
			}
		}()
	}
	for i := range b.photos {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return total, nil
}

// photo makes one photo; its texture depends on seed and index only, and
// nonce is written into the first pixels so that runs never share bytes
// (identical images are captioned once, in any batch).
func photo(w, h int, seed, index uint64, nonce string) ([]byte, error) {
	rng := mrand.New(mrand.NewPCG(seed, index))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	// A background gradient, three soft blobs of colour and per-pixel noise.
	var c0, c1 [3]float64
	for k := range 3 {
		c0[k], c1[k] = 40+rng.Float64()*180, 40+rng.Float64()*180
	}
	type blob struct {
		x, y, r float64
		col     [3]float64
	}
	blobs := make([]blob, 3)
	for i := range blobs {
		blobs[i] = blob{x: rng.Float64() * float64(w), y: rng.Float64() * float64(h), r: (0.1 + rng.Float64()*0.25) * float64(min(w, h))}
		for k := range 3 {
			blobs[i].col[k] = rng.Float64() * 255
		}
	}
	freq := 2 * math.Pi / (float64(min(w, h)) / (3 + rng.Float64()*6))
	var noise uint64
	for y := range h {
		fy := float64(y) / float64(h)
		row := img.Pix[y*img.Stride:]
		for x := range w {
			t := (fy + float64(x)/float64(w)) / 2
			wave := 18 * math.Sin(float64(x)*freq) * math.Cos(float64(y)*freq*0.7)
			var px [3]float64
			for k := range 3 {
				px[k] = c0[k]*(1-t) + c1[k]*t + wave
			}
			for _, bl := range blobs {
				dx, dy := float64(x)-bl.x, float64(y)-bl.y
				if d2 := dx*dx + dy*dy; d2 < bl.r*bl.r {
					a := 1 - d2/(bl.r*bl.r)
					for k := range 3 {
						px[k] = px[k]*(1-a) + bl.col[k]*a
					}
				}
			}
			if x%2 == 0 {
				noise = rng.Uint64()
			}
			for k := range 3 {
				n := float64(int(noise&0xff)%25 - 12)
				noise >>= 8
				row[x*4+k] = uint8(min(max(px[k]+n, 0), 255))
			}
			row[x*4+3] = 255
		}
	}
	for i := 0; i < len(nonce) && i*4+2 < len(img.Pix); i++ {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2] = nonce[i], nonce[i], nonce[i]
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// generateDocs writes b.docs contract-like documents of b.pages pages
// (about 3,000 characters each, form feeds between pages), alternating
// plain text and Markdown, each different. It returns the bytes written.
func (b *bench) generateDocs(ctx context.Context, open func(context.Context, string) (storage.Store, error), loc string) (int64, error) {
	if b.docs == 0 {
		return 0, nil
	}
	st, err := open(ctx, loc)
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", loc, err)
	}
	var total int64
	for i := range b.docs {
		md := i%2 == 1
		data := document(i, b.pages, md, uint64(b.seed), b.nonce)
		name, ctype := fmt.Sprintf("contract_%04d.txt", i), "text/plain; charset=utf-8"
		if md {
			name, ctype = fmt.Sprintf("contract_%04d.md", i), "text/markdown; charset=utf-8"
		}
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data)), ctype); err != nil {
			return 0, fmt.Errorf("bench: document %d: %w", i, err)
		}
		total += int64(len(data))
	}
	return total, nil
}

var clauses = []string{
	"The Supplier shall deliver the Goods to the Customer's premises within %d days of each purchase order.",
	"The Customer shall pay each invoice within %d days of receipt; late payments bear interest at %d%% per annum.",
	"Either party may terminate this Agreement on %d days' written notice if the other party materially breaches it.",
	"The liability of each party under this Agreement is limited to %d times the fees paid in the preceding %d months.",
	"The Receiving Party shall keep the Confidential Information secret for %d years after termination.",
	"This Agreement renews automatically for successive terms of %d months unless either party gives notice.",
	"The Supplier shall indemnify the Customer against all claims arising from defects in the Goods, up to %d euros.",
	"Any dispute shall be settled by arbitration in %d rounds under the rules of the chamber of commerce.",
	"Service credits of %d%% of the monthly fee apply for each hour of downtime beyond the first %d hours.",
}

var names = []string{"Acme Components GmbH", "Borealis Trading Ltd", "Castellan Logistics SA", "Dunmore Analytics Inc",
	"Elbe Office Supplies KG", "Fjord Maritime AS", "Granite Peak Software LLC", "Helios Energy BV"}

func document(i, pages int, md bool, seed uint64, nonce string) []byte {
	rng := mrand.New(mrand.NewPCG(seed, uint64(i)+1<<32))
	a, b := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
	var sb strings.Builder
	if md {
		fmt.Fprintf(&sb, "# Supply Agreement %d-%d-%s\n\nBetween **%s** (the Supplier) and **%s** (the Customer).\n\n", i, rng.IntN(1e6), nonce, a, b)
	} else {
		fmt.Fprintf(&sb, "SUPPLY AGREEMENT %d-%d-%s\n\nThis Agreement is made between %s (the Supplier) and %s (the Customer).\n\n", i, rng.IntN(1e6), nonce, a, b)
	}
	for p := 1; p <= pages; p++ {
		if p > 1 {
			sb.WriteString("\f")
		}
		start := sb.Len()
		section := 0
		for sb.Len()-start < 3000 {
			section++
			if md {
				fmt.Fprintf(&sb, "## %d.%d Section\n\n", p, section)
			} else {
				fmt.Fprintf(&sb, "%d.%d ", p, section)
			}
			for range 3 + rng.IntN(3) {
				cl := clauses[rng.IntN(len(clauses))]
				args := make([]any, strings.Count(cl, "%d"))
				for k := range args {
					args[k] = 1 + rng.IntN(90)
				}
				sb.WriteString(fmt.Sprintf(cl, args...))
				sb.WriteString(" ")
			}
			sb.WriteString("\n\n")
		}
	}
	return []byte(sb.String())
}
