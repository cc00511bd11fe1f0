package finalize

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

const (
	// webhookTimeout bounds one webhook call.
	webhookTimeout = 10 * time.Second
	// webhookMaxBody bounds the event body sent.
	webhookMaxBody = 64 << 10
	// webhookMaxAnswer is how much of the receiver's answer is read.
	webhookMaxAnswer = 4 << 10
	// webhookMaxDelay caps the backoff between webhook attempts.
	webhookMaxDelay = time.Hour
)

// errNoWebhookSecret: the worker has no secret, so it sends nothing.
var errNoWebhookSecret = errors.New("no webhook secret configured on the workers (--webhook-secret-file, LLAMAPIPE_WEBHOOK_SECRET or the tenant's webhook_secret_file in --tenants): the webhook is not sent unsigned")

// webhookError is a failed attempt: retryable unless permanent.
type webhookError struct {
	msg       string
	permanent bool
}

func (e *webhookError) Error() string { return e.msg }

// enqueueWebhook queues the completion webhook of a finalized batch that has
// one. The deterministic task ID makes a second finalize a no-op.
func (f *Finalizer) enqueueWebhook(ctx context.Context, b jobs.Batch) error {
	if b.Webhook == "" {
		return nil
	}
	t, err := webhook.NewTask(b.ID)
	if err != nil {
		return err
	}
	if _, err := f.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue webhook of %s: %w", b.ID, err)
	}
	return nil
}

// HandleWebhook is the handler of webhook.TypeTask: it POSTs a finalized batch's signed completion event to its
// webhook and records the delivery state in the batch. 2xx delivers; 408,
// 429, 5xx and network errors are retried (see WebhookRetryDelay); other
// answers and a worker without a secret fail the delivery for good.
func (f *Finalizer) HandleWebhook(ctx context.Context, t *asynq.Task) error {
	p, err := webhook.Decode(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b, err := f.tracker.Get(ctx, p.Batch)
	if err != nil {
		if errors.Is(err, jobs.ErrNoBatch) {
			return fmt.Errorf("webhook: %w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	if b.Webhook == "" {
		return nil
	}
	delivery := webhook.DeliveryID(b.ID, webhook.EventBatchCompleted)
	if st, ok, err := f.tracker.WebhookState(ctx, b.ID); err != nil {
		return err
	} else if ok && st.Status != jobs.WebhookPending {
		return nil // delivered or given up already
	}
	log := f.log.With("batch_id", b.ID, "delivery", delivery, "host", webhookHost(b.Webhook))
	secret, err := f.webhookSecret(b.Tenant)
	if err != nil {
		// The tenant's key file is unreadable (being rotated, a mount not
		// there yet): retried, never signed with another key. The error
		// names the file, not its content.
		log.ErrorContext(ctx, "webhook not sent: the tenant's key is unreadable", "error", err.Error())
		return fmt.Errorf("webhook of %s: %w", b.ID, err)
	}
	if len(secret) == 0 {
		log.ErrorContext(ctx, "webhook not sent", "reason", errNoWebhookSecret.Error())
		if err := f.tracker.SetWebhookState(ctx, b.ID, jobs.WebhookState{Status: jobs.WebhookFailed,
			LastError: errNoWebhookSecret.Error(), Updated: f.now().UTC(), Delivery: delivery}); err != nil {
			return err
		}
		return fmt.Errorf("webhook of %s: %w: %w", b.ID, errNoWebhookSecret, asynq.SkipRetry)
	}
	c, err := f.tracker.Counts(ctx, b.ID)
	if err != nil {
		return err
	}
	ev := webhook.NewEvent(b, c)
	if f.priced {
		cost := c.Cost
		ev.Cost, ev.Currency = &cost, f.currency
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("webhook of %s: %w", b.ID, err)
	}
	if len(body) > webhookMaxBody {
		return fmt.Errorf("webhook of %s: body of %d bytes over %d: %w", b.ID, len(body), webhookMaxBody, asynq.SkipRetry)
	}
	attempt, err := f.tracker.CountWebhookAttempt(ctx, b.ID)
	if errors.Is(err, jobs.ErrNoBatch) { // the record expired since Get
		return fmt.Errorf("webhook: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	code, sendErr := f.postWebhook(ctx, b.Webhook, delivery, secret, body)
	st := jobs.WebhookState{Status: jobs.WebhookDelivered, Attempts: attempt, LastStatus: code, Updated: f.now().UTC(), Delivery: delivery}
	var werr *webhookError
	errors.As(sendErr, &werr)
	if sendErr != nil {
		st.Status, st.LastError = jobs.WebhookPending, sendErr.Error()
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, ok := asynq.GetMaxRetry(ctx)
		if (werr != nil && werr.permanent) || (ok && retried >= maxRetry) {
			st.Status = jobs.WebhookFailed
		}
	}
	if err := f.tracker.SetWebhookState(ctx, b.ID, st); errors.Is(err, jobs.ErrNoBatch) {
		return fmt.Errorf("webhook: %w: %w", err, asynq.SkipRetry)
	} else if err != nil {
		return errors.Join(sendErr, err)
	}
	switch st.Status {
	case jobs.WebhookDelivered:
		log.InfoContext(ctx, "webhook delivered", "attempt", attempt, "status", st.LastStatus)
		return nil
	case jobs.WebhookFailed:
		log.ErrorContext(ctx, "webhook failed for good", "attempt", attempt, "error", sendErr.Error())
		return fmt.Errorf("webhook of %s: %w: %w", b.ID, sendErr, asynq.SkipRetry)
	default:
		log.WarnContext(ctx, "webhook attempt failed; retrying", "attempt", attempt, "error", sendErr.Error())
		return fmt.Errorf("webhook of %s: %w", b.ID, sendErr)
	}
}

// postWebhook makes one signed call and returns the answer's HTTP status (0:
// none). Redirects are not followed and at most webhookMaxAnswer bytes of
// the answer are read.
func (f *Finalizer) postWebhook(ctx context.Context, target, delivery string, secret, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, &webhookError{msg: "bad webhook URL", permanent: true}
	}
	now := f.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "llamapipe")
	req.Header.Set(webhook.HeaderEvent, webhook.EventBatchCompleted)
	req.Header.Set(webhook.HeaderDelivery, delivery)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(secret, now, body))
	client := f.client
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		// The error names the URL, which holds no secret; say only what
		// went wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, &webhookError{msg: "webhook call failed: " + err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookMaxAnswer))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return code, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return code, &webhookError{msg: fmt.Sprintf("webhook answered %d %s", code, http.StatusText(code))}
	default:
		return code, &webhookError{permanent: true,
			msg: fmt.Sprintf("webhook answered %d %s (not retried)", code, http.StatusText(code))}
	}
}

// webhookKeys gives a tenant's own webhook key: *tenants.Budgets, from
// the tenants file's webhook_secret_file (ok false: the tenant has none).
type webhookKeys interface {
	WebhookSecret(tenant string) (key []byte, ok bool, err error)
}

var _ webhookKeys = (*tenants.Budgets)(nil)

// webhookSecret is the key a batch of tenant is signed with: the tenant's
// own when the tenants file (Config.Tenants, when it is a *tenants.Budgets)
// names one, else the workers' global key (Config.WebhookSecret). So one
// tenant's receiver cannot verify, nor its key forge, another tenant's
// events. Keys never reach logs, payloads or errors.
func (f *Finalizer) webhookSecret(tenant string) ([]byte, error) {
	if k, ok := f.tenants.(webhookKeys); ok {
		key, own, err := k.WebhookSecret(tenant)
		if err != nil {
			return nil, err
		}
		if own {
			return key, nil
		}
	}
	return f.secret, nil
}

// webhookHost is the host of a webhook URL, for logs.
func webhookHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}

// WebhookRetryDelay is the backoff before retry n of a webhook call:
// base·2ⁿ, capped at an hour (base zero: 10s).
func WebhookRetryDelay(base time.Duration, n int) time.Duration {
	if base <= 0 {
		base = 10 * time.Second
	}
	d := base
	for range n {
		if d >= webhookMaxDelay {
			break
		}
		d *= 2
	}
	return min(d, webhookMaxDelay)
}
