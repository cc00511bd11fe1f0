package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

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
	pagesExtracted int64 // PDF pages the workers extracted the text of
	chunks         int   // chunks of the done items (long documents)
}

func (b *bench) pipeline(ctx context.Context) ([]row, int, error) {
	// Where inputs and results go.
	base := b.opts.Out
	if base == "" {
		dir, err := os.MkdirTemp("", "llamapipe-bench-")
		if err != nil {
			return nil, 0, fmt.Errorf("bench: %w", err)
		}
		if !b.opts.Keep {
			defer os.RemoveAll(dir)
		} else {
			fmt.Fprintf(b.svc.Progress, "llamapipe: bench: inputs and results kept in %s\n", dir)
		}
		base = dir
	} else {
		base = strings.TrimRight(base, "/") + "/bench-" + ingest.NewBatchID(time.Now())
		fmt.Fprintf(b.svc.Progress, "llamapipe: bench: inputs and results in %s\n", base)
	}
	open := b.svc.Open

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
	model, fs, closeModel, err := b.model(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer closeModel()

	stopProfiles, err := startProfiles(b.opts.CPUProfile, b.opts.MemProfile, b.opts.Trace)
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
		r, err := b.batch(ctx, model, fs, base+"/input/"+set.kind, base+"/results/"+set.kind)
		if err != nil {
			return nil, 0, err
		}
		r.kind, r.bytes, r.objects = set.kind, set.bytes, int64(set.n)
		runs = append(runs, r)
		fmt.Fprintf(b.svc.Progress, "llamapipe: bench: %s: %d/%d done in %s\n", set.kind, r.done, r.items, r.work.Round(time.Millisecond))
	}
	rss, rssErr := procStatus("VmHWM:")
	return b.rows(runs, rss, baseRSS, rssErr, rssReset), sumFailed(runs), nil
}

// model is the model of a pipeline measure: the offline provider, or the
// fake OpenAI-compatible server on a loopback port (fs) and a client of it;
// closeModel stops the server.
func (b *bench) model(ctx context.Context) (model llm.Client, fs *fakeserver.Server, closeModel func(), err error) {
	closeModel = func() {}
	if b.provider == llm.ProviderOffline {
		return offline.New(offline.Options{ContextTokens: 131072}), nil, closeModel, nil
	}
	key := "sk-bench-" + randomHex(12)
	fs = fakeserver.New(fakeserver.Options{
		Latency: b.latency, Jitter: b.jitter,
		Rate429: b.faultRate / 3, Rate500: b.faultRate / 3, RateGarbage: b.faultRate / 3, RateHang: b.hangRate,
		Seed: b.seed, APIKey: key,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, closeModel, fmt.Errorf("bench: fake model server: %w", err)
	}
	// Idle above the client's IdleConnTimeout: the client closes first.
	hs := &http.Server{Handler: fs, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() { _ = hs.Serve(l) }()
	closeModel = func() {
		fs.Close()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}
	conns := b.workers * b.conc
	model, err = openai.New(openai.Options{
		Profile: llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: "http://" + l.Addr().String() + "/v1", Model: fakeserver.DefaultModel,
			ContextTokens: 131072, MaxOutputTokens: 4096, MaxImages: 5, MaxImageBytes: 20 << 20,
			ImageFormats: []string{"image/jpeg", "image/png", "image/webp", "image/gif"}, TextOnly: true, JSONSchema: true},
		APIKey:     key,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}},
		Timeout:    b.opts.ModelTimeout,
	})
	if err != nil {
		closeModel()
		return nil, nil, func() {}, err
	}
	return model, fs, closeModel, nil
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
			return nil, usage("--memprofile: %v", err)
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
			return nil, usage("--cpuprofile: %v", err)
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
			return nil, usage("--trace: %v", err)
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
func (b *bench) batch(ctx context.Context, model llm.Client, fs *fakeserver.Server, src, out string) (batchRun, error) {
	var r batchRun
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	in := &ingest.Ingester{Open: b.svc.Open, Queue: client, Tracker: b.svc.Tracker, Logger: b.svc.Logger}
	start := time.Now()
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: out, Task: jobs.TaskAuto, Force: true,
		Options: jobs.Options{Language: "en"}, Provider: model.Profile().Provider, Model: model.Profile().Model}})
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
	var ws []*worker.Worker
	for range b.workers {
		cfg, err := b.svc.Worker(model)
		if err != nil {
			return r, err
		}
		cfg.Concurrency = b.conc
		w, err := worker.New(cfg)
		if err != nil {
			return r, err
		}
		ws = append(ws, w)
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
		cnt, err := b.svc.Tracker.Counts(ctx, res.BatchID)
		if err != nil {
			return r, err
		}
		if cnt.Fatal != "" {
			return r, errors.New("bench: batch stopped: " + cnt.Fatal)
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
	for _, w := range ws {
		n, _ := w.PagesRead()
		r.pagesExtracted += n
	}
	entries, err := b.svc.Tracker.Entries(ctx, res.BatchID)
	if err != nil {
		return r, err
	}
	for _, e := range entries {
		switch e.Status {
		case jobs.StatusDone:
			r.done++
			r.durations = append(r.durations, e.DurationMS)
			r.chunks += e.Chunks
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
