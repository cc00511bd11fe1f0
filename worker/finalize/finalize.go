package finalize

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/storage"
)

// Finalizer finalizes complete batches and sends their webhooks.
type Finalizer struct {
	tracker    tracker
	open       func(ctx context.Context, location string) (storage.Store, error)
	enq        enqueuer
	tenants    tenantStatus
	secret     []byte
	client     *http.Client
	retryDelay time.Duration
	priced     bool
	currency   string
	log        *slog.Logger
	now        func() time.Time
}

// tracker is the part of *jobs.Tracker finalize uses: a batch's record,
// counts and entries, its finalized mark and its webhook's state.
type tracker interface {
	Get(ctx context.Context, batch string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	Entries(ctx context.Context, batch string) ([]jobs.Entry, error)
	MarkFinalized(ctx context.Context, batch string, at time.Time) error
	WebhookState(ctx context.Context, batch string) (jobs.WebhookState, bool, error)
	SetWebhookState(ctx context.Context, batch string, st jobs.WebhookState) error
	CountWebhookAttempt(ctx context.Context, batch string) (int, error)
}

// enqueuer enqueues webhook tasks (*asynq.Client).
type enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// tenantStatus is a tenant's spend and budget (*tenants.Budgets).
type tenantStatus interface {
	Status(ctx context.Context, tenant string) (tenants.Status, error)
}

var (
	_ tracker      = (*jobs.Tracker)(nil)
	_ enqueuer     = (*asynq.Client)(nil)
	_ tenantStatus = (*tenants.Budgets)(nil)
)

// Config is what a Finalizer needs. Tracker, Open and Enqueuer are
// required.
type Config struct {
	// Tracker keeps batch records (a *jobs.Tracker).
	Tracker tracker
	// Open opens a batch's output location.
	Open func(ctx context.Context, location string) (storage.Store, error)
	// Enqueuer enqueues webhook tasks (an *asynq.Client).
	Enqueuer enqueuer
	// Tenants gives a batch's tenant's spend and budget for report.md. Nil:
	// the report only names the tenant.
	Tenants tenantStatus
	// WebhookSecret signs completion webhooks (HMAC-SHA256). Empty: webhook
	// tasks fail for good instead of calling unsigned. Never logged.
	WebhookSecret []byte
	// WebhookClient makes webhook calls (redirects are never followed). Nil
	// means a plain http.Client.
	WebhookClient *http.Client
	// Priced says the model has prices: webhook events then carry the
	// batch's cost in Currency.
	Priced bool
	// Currency is the currency of the batch's cost.
	Currency string
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// New returns a Finalizer.
func New(cfg Config) (*Finalizer, error) {
	if cfg.Tracker == nil || cfg.Open == nil || cfg.Enqueuer == nil {
		return nil, errors.New("finalize: Tracker, Open and Enqueuer are required")
	}
	f := &Finalizer{tracker: cfg.Tracker, open: cfg.Open, enq: cfg.Enqueuer, tenants: cfg.Tenants,
		secret: cfg.WebhookSecret, client: cfg.WebhookClient, priced: cfg.Priced, currency: cfg.Currency,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), now: cfg.Now}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// HandleFinalize is the handler of jobs.TypeFinalize: it writes
// manifest.jsonl and report.md for a complete batch and queues its webhook.
// It is idempotent: a second run rewrites the same two objects.
func (f *Finalizer) HandleFinalize(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeFinalize(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b, err := f.tracker.Get(ctx, p.Batch)
	if err != nil {
		return err
	}
	c, err := f.tracker.Counts(ctx, p.Batch)
	if err != nil {
		return err
	}
	if !c.Complete() {
		return fmt.Errorf("finalize %s: batch not complete (%d of %d ended)", p.Batch, c.Ended(), c.Total)
	}
	entries, err := f.tracker.Entries(ctx, p.Batch)
	if err != nil {
		return err
	}
	out, err := f.open(ctx, b.Out)
	if err != nil {
		return err
	}
	var manifest bytes.Buffer
	enc := json.NewEncoder(&manifest)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("manifest of %s: %w", p.Batch, err)
		}
	}
	if err := out.Put(ctx, b.ManifestPath(), bytes.NewReader(manifest.Bytes()), int64(manifest.Len()), "application/x-ndjson"); err != nil {
		return fmt.Errorf("write manifest of %s: %w", p.Batch, err)
	}
	now := f.now()
	report := f.report(ctx, b, c, entries, now)
	if err := out.Put(ctx, b.ReportPath(), strings.NewReader(report), int64(len(report)), "text/markdown; charset=utf-8"); err != nil {
		return fmt.Errorf("write report of %s: %w", p.Batch, err)
	}
	if err := f.tracker.MarkFinalized(ctx, p.Batch, now); err != nil {
		return err
	}
	if err := f.enqueueWebhook(ctx, b); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "batch finalized", "batch_id", p.Batch, "done", c.Done, "failed", c.Failed, "skipped", c.Skipped)
	return nil
}
