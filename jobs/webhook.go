package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TypeWebhook tells a batch's completion webhook that the batch ended.
const TypeWebhook = "llamapipe:webhook"

// EventBatchCompleted is the event of a batch whose manifest and report were
// written (whether its items succeeded, failed or were cancelled).
const EventBatchCompleted = "batch.completed"

// WebhookMaxRetry is how often a webhook call is retried (with exponential
// backoff: about seven hours in all) before its delivery is given up.
const WebhookMaxRetry = 15

// Webhook delivery states (WebhookState.Status).
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookPayload is the payload of a TypeWebhook task: the batch only; the
// worker reads everything else (and the URL) from the batch record.
type WebhookPayload struct {
	V     int    `json:"v"`
	Batch string `json:"batch"`
}

// WebhookTaskID is the asynq task ID of a batch's completion webhook: it is
// enqueued once however often the batch is finalized.
func WebhookTaskID(batch string) string { return "webhook:" + batch }

// WebhookDeliveryID is the X-Llamapipe-Delivery value of a batch's event:
// the same on every attempt.
func WebhookDeliveryID(batch, event string) string { return batch + ":" + event }

// NewWebhookTask builds the task that calls a batch's completion webhook. It
// runs on the critical queue: it is small and someone is waiting for it.
func NewWebhookTask(batch string) (*asynq.Task, error) {
	if batch == "" {
		return nil, fmt.Errorf("%w: no batch", ErrBadPayload)
	}
	b, err := json.Marshal(WebhookPayload{V: PayloadVersion, Batch: batch})
	if err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return asynq.NewTask(TypeWebhook, b,
		asynq.TaskID(WebhookTaskID(batch)),
		asynq.Queue(QueueCritical),
		asynq.MaxRetry(WebhookMaxRetry),
		asynq.Retention(Retention),
	), nil
}

// DecodeWebhook decodes a webhook payload.
func DecodeWebhook(b []byte) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if p.V > PayloadVersion || p.V < 1 || p.Batch == "" {
		return p, fmt.Errorf("%w: webhook payload v%d batch %q", ErrBadPayload, p.V, p.Batch)
	}
	return p, nil
}

// WebhookEvent is the JSON body of a webhook call. It holds counts and
// locations only: no document text, captions or secrets.
type WebhookEvent struct {
	Event    string `json:"event"`
	Delivery string `json:"delivery"`
	Batch    string `json:"batch"`
	Tenant   string `json:"tenant,omitempty"`
	// State is finished, cancelled (the batch was cancelled) or stopped (a
	// fatal error such as a refused API key; see Fatal).
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished"`
	Counts   struct {
		Total     int `json:"total"`
		Done      int `json:"done"`
		Failed    int `json:"failed"`
		Skipped   int `json:"skipped"`
		Cancelled int `json:"cancelled"`
	} `json:"counts"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Cost and Currency are set when the model's prices are known.
	Cost     *float64 `json:"cost,omitempty"`
	Currency string   `json:"currency,omitempty"`
	// Fatal is the message that stopped the batch, if any.
	Fatal string `json:"fatal,omitempty"`
	// RetryOf names the batch this one retried, if any.
	RetryOf string `json:"retry_of,omitempty"`
	// Manifest and Report are the locations of manifest.jsonl and report.md.
	Manifest string `json:"manifest"`
	Report   string `json:"report"`
}

// NewWebhookEvent describes a finalized batch for its webhook.
func NewWebhookEvent(b Batch, c Counts) WebhookEvent {
	ev := WebhookEvent{Event: EventBatchCompleted, Delivery: WebhookDeliveryID(b.ID, EventBatchCompleted),
		Batch: b.ID, Tenant: b.Tenant, State: StateFinished, Created: b.Created, Finished: c.Finished,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, Fatal: c.Fatal, RetryOf: b.RetryOf,
		Manifest: joinKey(b.Out, b.ManifestPath()), Report: joinKey(b.Out, b.ReportPath())}
	switch {
	case c.Fatal != "":
		ev.State = StateStopped
	case c.CancelRequested:
		ev.State = StateCancelled
	}
	ev.Counts.Total, ev.Counts.Done, ev.Counts.Failed, ev.Counts.Skipped, ev.Counts.Cancelled = c.Total, c.Done, c.Failed, c.Skipped, c.Cancelled
	return ev
}

func joinKey(loc, key string) string { return strings.TrimRight(loc, "/") + "/" + key }

// WebhookState is the delivery state of a batch's completion webhook.
type WebhookState struct {
	// Status is pending, delivered or failed.
	Status string `json:"status"`
	// Attempts counts the calls made so far.
	Attempts int `json:"attempts"`
	// LastStatus is the HTTP status of the last answer (0: none).
	LastStatus int `json:"last_status,omitempty"`
	// LastError says why the last attempt did not deliver (no secrets).
	LastError string `json:"last_error,omitempty"`
	// Updated is when the state last changed.
	Updated time.Time `json:"updated,omitzero"`
	// Delivery is the X-Llamapipe-Delivery value.
	Delivery string `json:"delivery,omitempty"`
}

// webhookWriteScript writes a field of a batch record only while the
// record exists, so a webhook attempt that lands after the record expired
// does not bring back a key without a TTL. It answers false when the
// record is gone, else HSET's or HINCRBY's answer.
var webhookWriteScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then return false end
if ARGV[1] == "set" then return redis.call("HSET", KEYS[1], ARGV[2], ARGV[3]) end
return redis.call("HINCRBY", KEYS[1], ARGV[2], 1)
`)

// SetWebhookState stores the delivery state of a batch's webhook. A batch
// whose record is gone (expired or lost) is ErrNoBatch; nothing is written.
func (t *Tracker) SetWebhookState(ctx context.Context, batch string, s WebhookState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("webhook state of %s: %w", batch, err)
	}
	err = webhookWriteScript.Run(ctx, t.rdb, []string{BatchKey(t.prefix, batch)}, "set", "webhook", b).Err()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("webhook state of %s: %w", batch, ErrNoBatch)
	}
	if err != nil {
		return fmt.Errorf("webhook state of %s: %w", batch, err)
	}
	return nil
}

// CountWebhookAttempt counts one more call of a batch's webhook and returns
// the number of calls made so far, this one included. A batch whose record
// is gone is ErrNoBatch; nothing is written.
func (t *Tracker) CountWebhookAttempt(ctx context.Context, batch string) (int, error) {
	n, err := webhookWriteScript.Run(ctx, t.rdb, []string{BatchKey(t.prefix, batch)}, "incr", "webhook_attempts").Int()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("webhook attempts of %s: %w", batch, ErrNoBatch)
	}
	if err != nil {
		return 0, fmt.Errorf("webhook attempts of %s: %w", batch, err)
	}
	return n, nil
}

// WebhookState returns the delivery state of a batch's webhook; ok is false
// while no attempt has been recorded.
func (t *Tracker) WebhookState(ctx context.Context, batch string) (s WebhookState, ok bool, err error) {
	raw, err := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), "webhook").Bytes()
	if errors.Is(err, redis.Nil) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("webhook state of %s: %w", batch, err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, false, fmt.Errorf("webhook state of %s: %w", batch, err)
	}
	return s, true, nil
}
