package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Webhook delivery states (WebhookState.Status).
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

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
