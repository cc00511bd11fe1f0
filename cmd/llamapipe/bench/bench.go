package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Options say what to measure. The CLI's defaults are in brackets.
type Options struct {
	// Photos is the number of JPEG photos to generate [32].
	Photos int
	// PhotoSize is their size, WIDTHxHEIGHT [1600x1200].
	PhotoSize string
	// Docs is the number of text/Markdown documents to generate [16], of
	// Pages pages each [5] (about 3,000 characters a page).
	Docs, Pages int
	// Workers is the number of in-process workers [1], each processing
	// Concurrency tasks at once [8].
	Workers, Concurrency int
	// Provider is openai (the built-in fake server) or offline [openai].
	Provider string
	// Latency is the fake server's time to answer [200ms], varying
	// uniformly by ± Jitter [20ms].
	Latency, Jitter time.Duration
	// FaultRate is the fake server's share of requests answered 429, 500
	// or garbage (split evenly); HangRate the share that hang [0, 0].
	FaultRate, HangRate float64
	// ModelTimeout is the client timeout of one model request [30s].
	ModelTimeout time.Duration
	// Seed seeds the generated inputs and fault draws; zero means a new one
	// each run.
	Seed int64
	// Out is where inputs and results go: a folder or s3://bucket/prefix (a
	// run folder is made inside). Empty means a temporary folder, removed
	// afterwards unless Keep.
	Out  string
	Keep bool
	// Measure is all, pipeline, enqueue, unchanged, bounded, spill or targets
	// (each row of issue 16's table beside its reference) [all].
	Measure string
	// MaxQueued is the bound of Measure bounded and spill [100000].
	MaxQueued int
	// Catalog is the catalog size for Measure unchanged, bounded and spill [10000].
	Catalog int
	// EnqueueTasks synthetic tasks [10000] are enqueued from
	// EnqueueGoroutines goroutines [16] to measure the enqueue rate.
	EnqueueTasks, EnqueueGoroutines int
	// CPUProfile, MemProfile and Trace, when set, are files the processing
	// phases' CPU profile, allocation profile and execution trace go to.
	CPUProfile, MemProfile, Trace string
}

// Services are what the bench runs with.
type Services struct {
	// Redis is the queue's connection, Client a client of the same Redis
	// and Tracker the batch records in it. Required.
	Redis   asynq.RedisConnOpt
	Client  redis.UniversalClient
	Tracker *jobs.Tracker
	// Open opens storage locations. Required.
	Open func(ctx context.Context, location string) (storage.Store, error)
	// Worker returns the configuration of one worker for model (the CLI's
	// worker flags). Required for Measure all and pipeline; bench sets its
	// Concurrency to Options.Concurrency.
	Worker func(model llm.Client) (worker.Config, error)
	// Logger is required.
	Logger *slog.Logger
	// Progress gets a line per phase; nil means none.
	Progress io.Writer
}

// UsageError is a bad option: the caller's input is wrong.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) error {
	return &UsageError{Msg: "bench: " + fmt.Sprintf(format, args...)}
}

type bench struct {
	opts                Options
	svc                 Services
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

// Run measures what opts say and writes the result table to w. Bad options
// are a *UsageError; failed items an error after the table.
func Run(ctx context.Context, opts Options, svc Services, w io.Writer) error {
	if opts.MemProfile != "" {
		// Sample nothing until processing begins (startProfiles): the
		// generator's allocations are not the pipeline's.
		runtime.MemProfileRate = 0
	}
	if svc.Progress == nil {
		svc.Progress = io.Discard
	}
	b, err := newBench(opts, svc)
	if err != nil {
		return err
	}
	if svc.Redis == nil || svc.Client == nil || svc.Tracker == nil || svc.Open == nil || svc.Logger == nil ||
		svc.Worker == nil && (b.measure == "all" || b.measure == "pipeline" || b.measure == "targets") {
		return errors.New("bench: Services need Redis, Client, Tracker, Open and Logger (and Worker to measure the pipeline)")
	}
	return b.run(ctx, w)
}

// Check reports a bad option as a *UsageError, before anything starts.
func (o Options) Check() error {
	_, err := newBench(o, Services{})
	return err
}

func newBench(o Options, svc Services) (*bench, error) {
	b := &bench{
		opts: o, svc: svc,
		photos: o.Photos, docs: o.Docs, pages: o.Pages,
		workers: o.Workers, conc: o.Concurrency, provider: o.Provider,
		latency: o.Latency, jitter: o.Jitter,
		faultRate: o.FaultRate, hangRate: o.HangRate,
		seed: o.Seed, measure: o.Measure,
		enqTasks: o.EnqueueTasks, enqG: o.EnqueueGoroutines,
	}
	var err error
	if b.w, b.h, err = parsePhotoSize(o.PhotoSize); err != nil {
		return nil, usage("--photo-size: %v", err)
	}
	switch {
	case b.photos < 0 || b.docs < 0 || b.photos+b.docs == 0 && b.measure != "enqueue" && b.measure != "unchanged" && b.measure != "bounded" && b.measure != "spill" && b.measure != "targets":
		return nil, usage("--photos and --docs must not be negative, and not both zero")
	case b.pages < 1:
		return nil, usage("--pages must be at least 1")
	case b.workers < 1 || b.conc < 1:
		return nil, usage("--workers and --concurrency must be at least 1")
	case b.provider != llm.ProviderOpenAI && b.provider != llm.ProviderOffline:
		return nil, usage("--provider %q: use openai (the built-in fake server) or offline", b.provider)
	case b.faultRate < 0 || b.faultRate > 1 || b.hangRate < 0 || b.hangRate > 1:
		return nil, usage("--fault-rate and --hang-rate are shares between 0 and 1")
	case !slices.Contains([]string{"all", "pipeline", "enqueue", "unchanged", "bounded", "spill", "targets"}, b.measure):
		return nil, usage("--measure %q: use all, pipeline, enqueue, unchanged, bounded, spill or targets", b.measure)
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

func (b *bench) run(ctx context.Context, stdout io.Writer) error {
	var rows []row
	if b.measure == "targets" {
		ts, err := b.targets(ctx)
		if err != nil {
			return err
		}
		printTargets(stdout, ts)
		return nil
	}
	if b.measure == "unchanged" || b.measure == "bounded" || b.measure == "spill" {
		measure := map[string]func(context.Context) ([]row, error){"unchanged": b.unchanged, "bounded": b.bounded, "spill": b.spillRuns}[b.measure]
		r, err := measure(ctx)
		if err != nil {
			return err
		}
		printTable(stdout, r)
		return nil
	}
	if b.measure != "pipeline" {
		r, err := b.measureEnqueue(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	var failed int
	if b.measure != "enqueue" {
		r, f, err := b.pipeline(ctx)
		if err != nil {
			return err
		}
		rows, failed = append(r, rows...), f
	}
	printTable(stdout, rows)
	if failed > 0 {
		return fmt.Errorf("bench: %d items failed", failed)
	}
	return nil
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintf(w, "| metric | value | notes |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", r.metric, r.value, r.note)
	}
}

// runDir is where one measurement writes: a folder (or S3 prefix) named
// name and a fresh batch ID under --out, or under a temporary folder that
// cleanup removes unless --keep.
func (b *bench) runDir(name string) (base string, cleanup func(), err error) {
	cleanup = func() {}
	base = b.opts.Out
	if base == "" {
		dir, err := os.MkdirTemp("", "llamapipe-bench-")
		if err != nil {
			return "", cleanup, err
		}
		if !b.opts.Keep {
			cleanup = func() { _ = os.RemoveAll(dir) }
		}
		base = dir
	}
	return strings.TrimRight(base, "/") + "/" + name + "-" + ingest.NewBatchID(time.Now()), cleanup, nil
}
