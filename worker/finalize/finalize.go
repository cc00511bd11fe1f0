package finalize

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	retention  time.Duration
	priced     bool
	currency   string
	log        *slog.Logger
	now        func() time.Time
}

// tracker is the part of *jobs.Tracker finalize uses: a batch's record,
// counts and entries, its finalized mark and retention, and its webhook's
// state.
type tracker interface {
	Get(ctx context.Context, batch string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
	MarkFinalized(ctx context.Context, batch string, at time.Time) error
	Expire(ctx context.Context, b jobs.Batch, retention time.Duration, now time.Time) error
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
	// Retention is how long a finalized batch's records stay in Redis
	// (then its ID is answered "expired"). Zero means jobs.DefaultRetention
	// (30 days).
	Retention time.Duration
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
		retention: cmp.Or(cfg.Retention, jobs.DefaultRetention),
		log:       cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), now: cfg.Now}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// HandleFinalize is the handler of jobs.TypeFinalize: it writes a complete
// batch's manifest.jsonl, its exports (the contract register of its
// documents, the catalog of its images: see writeExports) and report.md
// under batches/<id>/ in its output (Batch.ManifestPath, ReportPath),
// then copies them to the output's root
// (the root's are the latest finalized batch's), marks the batch
// finalized, starts its retention and queues its webhook. It is
// idempotent: a second run rewrites the same objects.
//
// The manifest is streamed: entries are read page by page (EachEntry,
// each page sorted by source) into the store's Put, and the report is
// rendered from a bounded tally, so memory does not grow with the batch.
func (f *Finalizer) HandleFinalize(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeFinalize(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b, err := f.tracker.Get(ctx, p.Batch)
	if err != nil {
		if errors.Is(err, jobs.ErrNoBatch) {
			return fmt.Errorf("finalize: %w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	c, err := f.tracker.Counts(ctx, p.Batch)
	if err != nil {
		return err
	}
	if !c.Complete() {
		return fmt.Errorf("finalize %s: batch not complete (%d of %d ended)", p.Batch, c.Ended(), c.Total)
	}
	out, err := f.open(ctx, b.Out)
	if err != nil {
		return err
	}
	tl, err := f.writeManifest(ctx, out, b)
	if err != nil {
		return err
	}
	if tl.quotes, err = f.writeExports(ctx, out, b); err != nil {
		return err
	}
	now := f.now()
	report := f.report(ctx, b, c, tl, now)
	if err := out.Put(ctx, b.ReportPath(), strings.NewReader(report), int64(len(report)), reportType); err != nil {
		return fmt.Errorf("write report of %s: %w", p.Batch, err)
	}
	if err := f.copyLatest(ctx, out, b, report); err != nil {
		return err
	}
	// The retention starts before the finalized mark, so a batch seen
	// finalized has every key's lifetime set.
	if err := f.tracker.Expire(ctx, b, f.retention, now); err != nil {
		return err
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

const (
	manifestType = "application/x-ndjson"
	reportType   = "text/markdown; charset=utf-8"
)

// writeManifest streams a batch's entries, one JSON line each, into its
// manifest (Batch.ManifestPath) and returns their tally for the report.
// An entry of a retry batch names the batch it retries (retry_of).
func (f *Finalizer) writeManifest(ctx context.Context, out storage.Store, b jobs.Batch) (*tally, error) {
	tl := newTally()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		err := f.tracker.EachEntry(ctx, b.ID, func(e jobs.Entry) error {
			tl.add(e)
			e.RetryOf = b.RetryOf
			return enc.Encode(e)
		})
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	perr := out.Put(ctx, b.ManifestPath(), pr, -1, manifestType)
	pr.CloseWithError(cmp.Or(perr, io.ErrClosedPipe)) // a Put that stopped early unblocks the writer
	werr := <-done
	if perr != nil {
		return nil, fmt.Errorf("write manifest of %s: %w", b.ID, perr)
	}
	if werr != nil {
		return nil, fmt.Errorf("manifest of %s: %w", b.ID, werr)
	}
	return tl, nil
}

// copyLatest makes the output root's manifest.jsonl and report.md copies
// of this batch's (written after them, so the root's are always the latest
// finalized batch's and a batch's own are never replaced).
func (f *Finalizer) copyLatest(ctx context.Context, out storage.Store, b jobs.Batch, report string) error {
	if b.ManifestPath() == jobs.ManifestKey {
		return nil
	}
	rc, err := out.Get(ctx, b.ManifestPath(), nil)
	if err != nil {
		return fmt.Errorf("copy manifest of %s: %w", b.ID, err)
	}
	defer rc.Close()
	if err := out.Put(ctx, jobs.ManifestKey, rc, -1, manifestType); err != nil {
		return fmt.Errorf("copy manifest of %s: %w", b.ID, err)
	}
	if err := out.Put(ctx, jobs.ReportKey, strings.NewReader(report), int64(len(report)), reportType); err != nil {
		return fmt.Errorf("copy report of %s: %w", b.ID, err)
	}
	return nil
}
