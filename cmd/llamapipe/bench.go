package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/bench"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// benchCommand measures the pipeline on one machine against the fake model
// server (or the offline provider), and prints a Markdown table.
func benchCommand(stdout, stderr io.Writer) *cli.Command {
	var o bench.Options
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
			&cli.IntFlag{Name: "photos", Value: 32, Usage: "number of JPEG photos to generate", Sources: env("BENCH_PHOTOS"), Destination: &o.Photos},
			&cli.StringFlag{Name: "photo-size", Value: "1600x1200", Usage: "photo size WIDTHxHEIGHT in pixels (24 MP: 6000x4000)", Sources: env("BENCH_PHOTO_SIZE"), Destination: &o.PhotoSize},
			&cli.IntFlag{Name: "docs", Value: 16, Usage: "number of text/Markdown documents to generate", Sources: env("BENCH_DOCS"), Destination: &o.Docs},
			&cli.IntFlag{Name: "pages", Value: 5, Usage: "pages per document (about 3,000 characters each)", Sources: env("BENCH_PAGES"), Destination: &o.Pages},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "in-process workers (asynq servers), each with --concurrency", Sources: env("BENCH_WORKERS"), Destination: &o.Workers},
			&cli.StringFlag{Name: "provider", Value: "openai", Usage: "openai (the built-in fake server) or offline", Sources: env("BENCH_PROVIDER"), Destination: &o.Provider},
			&cli.DurationFlag{Name: "latency", Value: 200 * time.Millisecond, Usage: "fake server: time to answer each request", Sources: env("BENCH_LATENCY"), Destination: &o.Latency},
			&cli.DurationFlag{Name: "jitter", Value: 20 * time.Millisecond, Usage: "fake server: latency varies uniformly by ± this", Sources: env("BENCH_JITTER"), Destination: &o.Jitter},
			&cli.FloatFlag{Name: "fault-rate", Usage: "fake server: share of requests answered 429, 500 or garbage (split evenly)", Sources: env("BENCH_FAULT_RATE"), Destination: &o.FaultRate},
			&cli.FloatFlag{Name: "hang-rate", Usage: "fake server: share of requests that hang until --model-timeout", Sources: env("BENCH_HANG_RATE"), Destination: &o.HangRate},
			&cli.DurationFlag{Name: "model-timeout", Value: 30 * time.Second, Usage: "client timeout of one model request", Sources: env("BENCH_MODEL_TIMEOUT"), Destination: &o.ModelTimeout},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the generated inputs and fault draws (0: a new one each run)", Sources: env("BENCH_SEED"), Destination: &o.Seed},
			&cli.StringFlag{Name: "out", Usage: "where inputs and results go: a folder or s3://bucket/prefix (a run folder is made inside); empty: a temporary folder, removed afterwards", Sources: env("BENCH_OUT"), Destination: &o.Out},
			&cli.BoolFlag{Name: "keep", Usage: "keep the temporary folder", Sources: env("BENCH_KEEP"), Destination: &o.Keep},
			&cli.StringFlag{Name: "measure", Value: "all", Usage: "all, pipeline (ingest and process), enqueue (queue rate and Redis memory only), unchanged (a nightly re-run over an unchanged catalog of --catalog images) bounded (Redis memory while a synthetic catalog of --catalog images is ingested, with --max-queued and without a bound), spill (Redis while --catalog images run through workers, bounded by --max-queued, with finished entries spilled to the work area and without) or targets (each row of issue 16's table beside its reference, in one run: the pipeline to --out against C ÷ latency, image preparation against vipsthumbnail, Redis per task and enqueue rate against bare asynq, the unchanged re-run against its listings, pages extracted per page of a long PDF)", Sources: env("BENCH_MEASURE"), Destination: &o.Measure},
			&cli.IntFlag{Name: "max-queued", Value: 100_000, Usage: "the bound of --measure bounded and spill", Sources: env("BENCH_MAX_QUEUED"), Destination: &o.MaxQueued},
			&cli.IntFlag{Name: "catalog", Value: 10000, Usage: "catalog size for --measure unchanged, bounded and spill", Sources: env("BENCH_CATALOG"), Destination: &o.Catalog},
			&cli.IntFlag{Name: "enqueue-tasks", Value: 10000, Usage: "synthetic tasks enqueued to measure the enqueue rate and Redis memory per task", Sources: env("BENCH_ENQUEUE_TASKS"), Destination: &o.EnqueueTasks},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the processing phases to this file (go tool pprof)", Sources: env("BENCH_CPUPROFILE"), Destination: &o.CPUProfile},
			&cli.StringFlag{Name: "memprofile", Usage: "write a heap profile (allocations of the processing phases: go tool pprof -sample_index=alloc_space) to this file", Sources: env("BENCH_MEMPROFILE"), Destination: &o.MemProfile},
			&cli.StringFlag{Name: "trace", Usage: "write an execution trace of the processing phases to this file (go tool trace): shows waits on Redis, disk and the model", Sources: env("BENCH_TRACE"), Destination: &o.Trace},
			&cli.IntFlag{Name: "enqueue-goroutines", Value: 16, Usage: "goroutines enqueueing at once", Sources: env("BENCH_ENQUEUE_GOROUTINES"), Destination: &o.EnqueueGoroutines},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			o.Concurrency = cmd.Int("concurrency") // a worker flag, shared with run and worker
			return runBench(ctx, cmd, o, stdout, stderr)
		},
	}
}

// runBench checks the options, connects (a private redis-server without
// --redis-url) and runs bench.Run with workers configured by the worker
// flags.
func runBench(ctx context.Context, cmd *cli.Command, o bench.Options, stdout, stderr io.Writer) error {
	if err := o.Check(); err != nil {
		return usageIf[*bench.UsageError](err)
	}
	log, err := newLogger(cmd, stderr, slog.LevelError)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cmd, true, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	err = bench.Run(ctx, o, bench.Services{
		Redis: c.opt, Client: c.rdb, Tracker: c.tracker, Open: opener(cmd), Logger: log, Progress: stderr,
		Worker: func(model llm.Client) (worker.Config, error) { return workerConfig(cmd, c, model, log) },
	}, stdout)
	return usageIf[*bench.UsageError](err)
}
