package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/batchmode"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/feedfetch"
	"github.com/llamapipe/llamapipe/worker/finalize"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/metrics"
	"github.com/llamapipe/llamapipe/worker/pdftext"
)

// Opener opens a store from a location URL (see storage/backends.Open).
type Opener func(ctx context.Context, location string) (storage.Store, error)

// Config is everything a worker needs. Open, Redis, Tracker and Model are
// required.
type Config struct {
	// Redis is the asynq connection (the same one ingest enqueued on).
	Redis asynq.RedisConnOpt
	// Tracker keeps batch records (a *jobs.Tracker).
	Tracker Records
	// Open opens storage locations.
	Open Opener
	// Model is the model client (with its rate limit already applied).
	Model llm.Client
	// Fallbacks are the clients a batch's fallback chain may name
	// (jobs.Options.Fallback), by preset; a name the worker has no client
	// for is left out of the chain. Outages is the chain's shared state
	// (ratelimit.Outages; nil: this process's own), FallbackPolicy when a
	// provider counts as down.
	Fallbacks      map[string]llm.Client
	Outages        llm.Outages
	FallbackPolicy llm.FallbackPolicy
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Concurrency is how many tasks run at once in this process. Zero means 8.
	Concurrency int
	// Queues maps queue name to priority weight. Nil means jobs.QueueWeights().
	Queues map[string]int
	// ShutdownTimeout is how long running tasks get after SIGTERM before they
	// go back to the queue. Zero means 30s.
	ShutdownTimeout time.Duration
	// Retention is how long a finalized batch's records stay in Redis
	// (finalize.Config.Retention). Zero means jobs.DefaultRetention (30 days).
	Retention time.Duration
	// Image configures image preparation; the model profile's limits are
	// applied on top.
	Image imageprep.Options
	// ImageSlots is how many images one process decodes at once; the other
	// tasks wait their turn. Zero means the number of CPUs.
	ImageSlots int
	// MaxInputBytes caps how much of one object is read. Zero means 512 MiB.
	MaxInputBytes int64
	// Feed is how the image URLs of a feed are fetched (limits, the
	// private-address guard: Feed.AllowPrivate is --feed-allow-private).
	Feed feedfetch.Config
	// PDFPasswords maps a source key (or full URL) to its PDF password.
	PDFPasswords map[string]string
	// PDF configures the PDF text extractor; its pool is sized to Concurrency
	// when zero.
	PDF pdftext.Config
	// Prompts override embedded prompt templates by name. Nil: embedded.
	Prompts prompts.Set
	// Metrics records items, timings and retries. Nil records nothing.
	Metrics *metrics.Metrics
	// Feeds are bounded batches' feeds (jobs/feed): an item's end asks its
	// batch's feed task to top the queue up. Nil: only its polls do.
	Feeds *feed.Store
	// SpillPage is how many finished entries of a bounded batch move from
	// Redis to its work area at a time, once its items hash holds twice
	// as many (jobs/spill). Zero means spill.DefaultPageSize (1,000);
	// negative: never.
	SpillPage int
	// Handlers are more task handlers by type, e.g. ingesttask.Type for
	// scheduled ingests (the worker itself never imports ingest).
	Handlers map[string]asynq.Handler
	// SweepInterval is how often archived tasks are checked for items that
	// were never recorded (see sweepArchived). Zero means one minute.
	SweepInterval time.Duration
	// WebhookSecret signs completion webhooks (HMAC-SHA256). Empty: webhook
	// tasks fail for good instead of calling unsigned. Never logged.
	WebhookSecret []byte
	// WebhookRetryDelay is the first backoff of a failed webhook call; it
	// doubles up to an hour. Zero means 10s.
	WebhookRetryDelay time.Duration
	// WebhookClient makes webhook calls (redirects are never followed).
	// Nil means a plain http.Client.
	WebhookClient *http.Client
	// Batch is the provider's batch API for items of batches in batch mode
	// (jobs.UsesBatchAPI). Nil: such items are answered online.
	Batch batchapi.Client
	// BatchCollectDelay is how long pending batch requests gather before a
	// collector submits them. Zero means 30s.
	BatchCollectDelay time.Duration
	// BatchPollInterval is how often a provider batch job is polled. Zero
	// means one minute.
	BatchPollInterval time.Duration
	// BatchSmall says what happens to fewer pending requests than the batch
	// API's minimum per job (Bedrock): "online" (the default) answers them
	// online, "wait" waits for more.
	BatchSmall string
	// BatchRetry says how a request the provider failed or never answered
	// (its window expired) is asked once more: "online" (the default) or
	// "batch" (in the next provider job; then online if that fails too).
	BatchRetry string
	// BatchOnlineAfter and BatchOnlineAfterFailures bound how long a
	// failing provider batch API is waited out before its requests go
	// online (batchmode.Config.OnlineAfter). Zero: 15m and 5.
	BatchOnlineAfter         time.Duration
	BatchOnlineAfterFailures int
	// Tenants are the tenants' budgets: items of a tenant with no budget
	// left pause (PausedError), recorded items are charged to their tenant,
	// and model calls are bound to the tenant (llm.For) for the fair-share
	// gate and the metrics. Nil: no tenants, nothing charged or paused.
	Tenants *tenants.Budgets
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Worker processes tasks.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	srv    *asynq.Server
	client *asynq.Client
	stores *storeCache
	now    func() time.Time

	// The stages: documents (extract → chunk → map → reduce → write) and
	// images (prepare → caption → write).
	document *document.Stage
	caption  *caption.Stage

	// fin finalizes complete batches and sends their webhooks.
	fin *finalize.Finalizer
	// bm is batch mode (nil without Config.Batch).
	bm  *batchmode.Mode
	rdb redis.UniversalClient
	// outages is the fallback chains' state (Config.Outages, else this
	// process's own), with the provider-down gauge beside it.
	outages *watchedOutages
	// batches are the batch records item payloads are completed from.
	batches batchCache
	// feed fetches the image URLs of feed items.
	feed *feedfetch.Fetcher
	// records counts the items this worker recorded (spill looks at the
	// items hash every few of them).
	records atomic.Int64
}

// New returns a Worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if cfg.Redis == nil || cfg.Tracker == nil || cfg.Open == nil || cfg.Model == nil {
		return nil, errors.New("worker: Redis, Tracker, Open and Model are required")
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 8)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 30*time.Second)
	cfg.MaxInputBytes = cmp.Or(cfg.MaxInputBytes, 512<<20)
	cfg.SweepInterval = cmp.Or(cfg.SweepInterval, time.Minute)
	if cfg.Queues == nil {
		cfg.Queues = jobs.QueueWeights()
	}
	if cfg.PDF.Pool == 0 {
		cfg.PDF.Pool = cfg.Concurrency
	}
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)).With("component", "worker")
	w := &Worker{cfg: cfg, log: log, stores: newStoreCache(cfg.Open), now: cfg.Now, feed: feedfetch.New(cfg.Feed)}
	if w.now == nil {
		w.now = time.Now
	}
	if t, ok := cfg.Tracker.(*jobs.Tracker); ok {
		t.SetPages(w.stores.get) // finalize reads spilled entries (jobs/spill)
	}
	w.document = document.New(document.Config{Prompts: cfg.Prompts, PDF: cfg.PDF, PDFPasswords: cfg.PDFPasswords,
		Image: caption.ImageOptions(cfg.Image, cfg.Model.Profile()), MaxInputBytes: cfg.MaxInputBytes,
		Metrics: cfg.Metrics, Now: w.now})
	capStage, err := caption.New(caption.Config{Cache: cfg.Tracker, Open: w.stores.get, Prompts: cfg.Prompts,
		Image: cfg.Image, Slots: cfg.ImageSlots, Metrics: cfg.Metrics, Now: w.now})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.caption = capStage
	w.client = asynq.NewClient(cfg.Redis)
	prices := cfg.Model.Profile().Prices
	fcfg := finalize.Config{Tracker: cfg.Tracker, Open: w.stores.get, Enqueuer: w.client,
		WebhookSecret: cfg.WebhookSecret, WebhookClient: cfg.WebhookClient,
		Priced:   prices.Priced(),
		Currency: prices.Currency, Retention: cfg.Retention, Logger: log, Now: w.now}
	if cfg.Tenants != nil {
		fcfg.Tenants = cfg.Tenants
	}
	fin, err := finalize.New(fcfg)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.fin = fin
	w.outages = &watchedOutages{Outages: cfg.Outages, m: cfg.Metrics}
	if cfg.Outages == nil {
		w.outages.Outages = &llm.MemoryOutages{}
	}
	if cfg.Batch != nil {
		rdb, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			return nil, errors.New("worker: batch mode needs a go-redis connection")
		}
		w.rdb = rdb
		bm, err := batchmode.New(batchmode.Config{Batch: cfg.Batch, Profile: cfg.Model.Profile(), Redis: rdb,
			Asynq: cfg.Redis, Enqueuer: w.client, Open: w.stores.get, Tracker: cfg.Tracker, Metrics: cfg.Metrics,
			Logger: log, Now: w.now, CollectDelay: cfg.BatchCollectDelay, PollInterval: cfg.BatchPollInterval,
			Small: cfg.BatchSmall, Retry: cfg.BatchRetry, OnlineAfter: cfg.BatchOnlineAfter, OnlineAfterFailures: cfg.BatchOnlineAfterFailures})
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		w.bm = bm
	}
	w.srv = asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          cfg.Queues,
		ShutdownTimeout: cfg.ShutdownTimeout,
		RetryDelayFunc:  w.taskRetryDelay,
		// Retries due in a second or two (rate limits, identical images in
		// flight) should not wait for asynq's default 5s check.
		DelayedTaskCheckInterval: time.Second,
		IsFailure:                isFailure,
		Logger:                   asynqLogger{log},
		// asynq warns about every archived task; our own log says why.
		LogLevel: asynq.ErrorLevel,
	})
	return w, nil
}

// Handler returns the task handlers on a ServeMux (exposed for tests).
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeItem, w.itemHandler())
	mux.Handle(chunktask.TypeMap, w.mapHandler())
	mux.Handle(chunktask.TypeReduce, w.reduceHandler())
	mux.Handle(jobs.TypeFinalize, recoverPanics(asynq.HandlerFunc(w.handleFinalize)))
	mux.Handle(webhook.TypeTask, recoverPanics(asynq.HandlerFunc(w.fin.HandleWebhook)))
	mux.Handle(batchtask.TypeBatchCollect, recoverPanics(asynq.HandlerFunc(w.handleCollect)))
	mux.Handle(batchtask.TypeBatchPoll, recoverPanics(asynq.HandlerFunc(w.handlePoll)))
	for typ, h := range w.cfg.Handlers {
		mux.Handle(typ, recoverPanics(h))
	}
	return mux
}

// taskRetryDelay is the asynq RetryDelayFunc: webhook calls back off from
// WebhookRetryDelay, doubling up to an hour (finalize.WebhookRetryDelay);
// every other task uses retryDelay.
func (w *Worker) taskRetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if t.Type() == webhook.TypeTask {
		return finalize.WebhookRetryDelay(w.cfg.WebhookRetryDelay, n)
	}
	return retryDelay(n, err, t)
}

// handleCollect runs batch mode's collector (an error without batch mode).
func (w *Worker) handleCollect(ctx context.Context, t *asynq.Task) error {
	if w.bm == nil {
		p, err := batchtask.DecodeCollect(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return fmt.Errorf("batch requests of %s: this worker has no batch API for them (it serves %s)", p.Group, w.cfg.Model.Profile().Model)
	}
	return w.bm.HandleCollect(ctx, t)
}

// handlePoll runs batch mode's poller (an error without batch mode).
func (w *Worker) handlePoll(ctx context.Context, t *asynq.Task) error {
	if w.bm == nil {
		p, err := batchtask.DecodePoll(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return fmt.Errorf("batch job %s of %s: this worker has no batch API for it", p.Job, p.Group)
	}
	return w.bm.HandlePoll(ctx, t)
}

// Run processes tasks until ctx is cancelled, then stops taking new tasks,
// lets running ones finish for up to ShutdownTimeout (the rest return to the
// queue) and closes its connections.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.srv.Start(w.Handler()); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "model", w.cfg.Model.Profile().Model,
		"provider", w.cfg.Model.Profile().Provider)
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		w.sweepLoop(sweepCtx, w.cfg.SweepInterval)
	}()
	<-ctx.Done()
	stopSweep()
	<-swept
	w.log.Info("worker stopping: finishing running tasks", "timeout", w.cfg.ShutdownTimeout.String())
	w.srv.Shutdown()
	return w.Close()
}

// PagesRead returns how many PDF pages this worker's document stage has
// extracted the text of, and rendered as images, since it started (see
// document.Stage.PagesRead; the bench's pages-per-page measure).
func (w *Worker) PagesRead() (extracted, rendered int64) { return w.document.PagesRead() }

// Close releases the worker's connections and extractors.
func (w *Worker) Close() error {
	err := w.client.Close()
	if w.bm != nil {
		err = errors.Join(err, w.bm.Close())
	}
	if w.rdb != nil {
		err = errors.Join(err, w.rdb.Close())
	}
	return errors.Join(err, w.document.Close())
}

// storeCache opens each location once.
type storeCache struct {
	open Opener
	mu   sync.Mutex
	m    map[string]storage.Store
}

func newStoreCache(open Opener) *storeCache {
	return &storeCache{open: open, m: map[string]storage.Store{}}
}

func (c *storeCache) get(ctx context.Context, location string) (storage.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[location]; ok {
		return st, nil
	}
	st, err := c.open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	c.m[location] = st
	return st, nil
}

// asynqLogger adapts slog to asynq's five-method Logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
