package batchmode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// ErrDeferred is returned while an item waits for its batch answer.
var ErrDeferred = errors.New("waiting for the provider's batch job to answer")

// Request states (in the group's state hash).
const (
	bmPending  = "pending"
	bmAnswered = "answered"
	bmOnline   = "online"
	bmJob      = "job:" // + provider job ID
)

// Mode is the worker's side of batch mode for its model: For wraps the
// model client of an item whose batch uses the batch API, and
// HandleCollect and HandlePoll are the collector's and poller's task
// handlers.
type Mode struct {
	client  batchapi.Client
	rdb     redis.UniversalClient
	group   string
	profile llm.Profile
	// insp runs waiting tasks again (Inspector.RunTask).
	insp    *asynq.Inspector
	enq     enqueuer
	open    func(ctx context.Context, location string) (storage.Store, error)
	tracker cancelledChecker
	metrics requestRecorder
	log     *slog.Logger
	now     func() time.Time

	collectWindow  time.Duration
	pollInterval   time.Duration
	small          string
	retry          string
	onlineAfter    time.Duration
	onlineFailures int
}

// enqueuer enqueues the collector and poller tasks (*asynq.Client).
type enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// cancelledChecker says whether a batch was cancelled, and shows a
// batch's trouble (*jobs.Tracker).
type cancelledChecker interface {
	Cancelled(ctx context.Context, batch string) (bool, error)
	SetWarning(ctx context.Context, batch, msg string) error
}

// requestRecorder counts a model request answered through the batch API
// (*metrics.Metrics; a nil *metrics.Metrics records nothing).
type requestRecorder interface {
	ModelRequestFor(tenant, provider, model string, d time.Duration, inTok, outTok int, cost float64, currency string, err error)
	BatchModeFailure(group, stage string)
}

var (
	_ enqueuer         = (*asynq.Client)(nil)
	_ cancelledChecker = (*jobs.Tracker)(nil)
	_ requestRecorder  = (*metrics.Metrics)(nil)
)

// Config is what batch mode needs. Batch, Profile, Redis, Asynq, Enqueuer,
// Open and Tracker are required.
type Config struct {
	// Batch is the provider's batch API.
	Batch batchapi.Client
	// Profile is the online model's profile: it names the group of
	// requests (preset or provider, and model) and prices batch answers.
	Profile llm.Profile
	// Redis keeps the requests' states (llamapipe:bm:{group}:...).
	Redis redis.UniversalClient
	// Asynq is the connection waiting tasks are run again on.
	Asynq asynq.RedisConnOpt
	// Enqueuer enqueues the collector and poller tasks (an *asynq.Client).
	Enqueuer enqueuer
	// Open opens the storage location a request's line and answer live in.
	Open func(ctx context.Context, location string) (storage.Store, error)
	// Tracker says whether a batch was cancelled (a *jobs.Tracker).
	Tracker cancelledChecker
	// Metrics counts the requests answered through the batch API. Nil
	// records nothing.
	Metrics *metrics.Metrics
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// CollectDelay is how long pending requests gather before a collector
	// submits them. Zero means 30s.
	CollectDelay time.Duration
	// PollInterval is how often a provider job is polled. Zero means one
	// minute.
	PollInterval time.Duration
	// Small says what happens to fewer pending requests than the batch
	// API's minimum per job: "online" (the default) or "wait".
	Small string
	// Retry says how a request the provider failed or never answered is
	// asked once more: "online" (the default) or "batch".
	Retry string
	// OnlineAfter and OnlineAfterFailures bound how long a failing
	// provider batch API (a collector's upload or job creation, a job's
	// status or results) is waited out: after that long since the first
	// failure, or that many failures in a row, its requests are answered
	// online. Zero means DefaultOnlineAfter (15m) and
	// DefaultOnlineAfterFailures (5).
	OnlineAfter         time.Duration
	OnlineAfterFailures int
}

var groupRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// New returns batch mode for cfg's model; Close releases it.
func New(cfg Config) (*Mode, error) {
	if cfg.Batch == nil || cfg.Redis == nil || cfg.Asynq == nil || cfg.Enqueuer == nil || cfg.Open == nil || cfg.Tracker == nil {
		return nil, errors.New("batch mode: Batch, Redis, Asynq, Enqueuer, Open and Tracker are required")
	}
	prof := cfg.Profile
	name := cmp.Or(prof.Preset, prof.Provider)
	group := groupRE.ReplaceAllString(name+"-"+prof.Model, "-")
	b := &Mode{client: cfg.Batch, rdb: cfg.Redis, group: group, profile: prof,
		insp: asynq.NewInspector(cfg.Asynq), enq: cfg.Enqueuer, open: cfg.Open, tracker: cfg.Tracker, metrics: cfg.Metrics,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), now: cfg.Now,
		collectWindow: cmp.Or(cfg.CollectDelay, 30*time.Second), pollInterval: cmp.Or(cfg.PollInterval, time.Minute),
		small: cfg.Small, retry: cfg.Retry,
		onlineAfter:    cmp.Or(cfg.OnlineAfter, DefaultOnlineAfter),
		onlineFailures: cmp.Or(cfg.OnlineAfterFailures, DefaultOnlineAfterFailures)}
	if b.now == nil {
		b.now = time.Now
	}
	return b, nil
}

// Close releases batch mode's connection.
func (b *Mode) Close() error { return b.insp.Close() }

// Batch mode's Redis keys (a request's hash: state, loc — the output
// location its line and answer live in —, batch — the first batch that
// asked — and retried; the pending set; a provider job's requests) and
// their lifetimes are jobs' (jobs.BatchModeRequestKey and the rest).

// setState sets a request's state and renews its records' lifetime.
func (b *Mode) setState(ctx context.Context, id, state string) error {
	_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, jobs.BatchModeRequestKey(b.group, id), "state", state)
		pl.Expire(ctx, jobs.BatchModeRequestKey(b.group, id), jobs.BatchModeRequestTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch mode: %s: %w", id, err)
	}
	return nil
}

// loc returns the output location a request's line and answer live in.
func (b *Mode) loc(ctx context.Context, id string) (string, error) {
	loc, err := b.rdb.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "loc").Result()
	if errors.Is(err, redis.Nil) {
		return "", storage.ErrNotExist
	}
	if err != nil {
		return "", fmt.Errorf("batch mode: %s: %w", id, err)
	}
	return loc, nil
}

func (b *Mode) lineKey(id string) string {
	return ".llamapipe/batch/" + b.group + "/" + id + ".line"
}

func (b *Mode) answerKey(id string) string {
	return ".llamapipe/batch/" + b.group + "/" + id + ".answer.json"
}

// Item is the item whose model calls a client of For serves.
type Item struct {
	// Batch is the item's batch ID.
	Batch string
	// Out is the item's output location: its requests' lines and answers
	// are written there.
	Out string
}

// For returns the model client of one item whose batch uses the batch API:
// each call is answered from the provider's batch job, or returns
// ErrDeferred while it waits for one; a request the batch cannot answer
// goes to online, the item's online client (already bound to its task).
// tenant is the item's tenant, for the metrics.
func (b *Mode) For(online llm.Client, tenant string, item Item) llm.Client {
	return &itemClient{b: b, online: online, tenant: tenant, item: item}
}

// itemClient is an item's model client in batch mode.
type itemClient struct {
	b      *Mode
	online llm.Client
	tenant string
	item   Item
}

func (c *itemClient) Profile() llm.Profile { return c.online.Profile() }

func (c *itemClient) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	return c.b.complete(ctx, c, req)
}
