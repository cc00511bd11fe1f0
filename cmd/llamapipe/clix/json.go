package clix

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

// BatchStatus is a batch as status, cancel, run and batches print it with
// --json: the API's GET /v1/batches/{id} answer (ingest/api.BatchView)
// without its rate and ETA, so a script reads one shape from both.
type BatchStatus struct {
	jobs.Batch
	Counts jobs.Counts `json:"counts"`
	// State is one of jobs.States (jobs.Counts.State).
	State string `json:"state"`
	// Manifest and Report are where manifest.jsonl and report.md are (or
	// will be, once State is finished or cancelled) written.
	Manifest        string             `json:"manifest"`
	Report          string             `json:"report"`
	WebhookDelivery *jobs.WebhookState `json:"webhook_delivery,omitempty"`
	// ProvidersDown are the providers the batch's items may call (its
	// model, its fallback presets) that are down now, while it runs.
	ProvidersDown []outage.Down `json:"providers_down,omitempty"`
}

// NewBatchStatus makes a batch's status from its record and counts; st is
// its webhook's delivery (nil: none, or not asked).
func NewBatchStatus(b jobs.Batch, c jobs.Counts, st *jobs.WebhookState) BatchStatus {
	out := strings.TrimRight(b.Out, "/")
	return BatchStatus{Batch: b, Counts: c, State: c.State(),
		Manifest: out + "/" + b.ManifestPath(), Report: out + "/" + b.ReportPath(), WebhookDelivery: st}
}

// Cancelled is what cancel --json prints: the batch after the cancel and
// how many queued items were removed.
type Cancelled struct {
	BatchStatus
	Removed int `json:"removed_from_queue"`
}

// Started is what ingest --json and retry --json print: the new batch and
// what its listing found.
type Started struct {
	BatchID string         `json:"batch_id"`
	Total   int            `json:"total"`
	Queued  int            `json:"queued"`
	Skipped int            `json:"skipped"`
	Kinds   map[string]int `json:"kinds,omitempty"`
	RetryOf string         `json:"retry_of,omitempty"`
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// StatusReader is what ReadBatchStatus reads of the batch records (a
// *jobs.Tracker).
type StatusReader interface {
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	WebhookState(ctx context.Context, batch string) (jobs.WebhookState, bool, error)
}

// DownReader is what ReadBatchStatus reads of the providers down (an
// *outage.Reader).
type DownReader interface {
	ProvidersDown(ctx context.Context, b jobs.Batch) ([]outage.Down, error)
}

// Tracked is the batch records with the providers down: a StatusReader
// whose statuses name the providers down.
type Tracked struct {
	*jobs.Tracker
	*outage.Reader
}

// Track is t with the providers down of rdb (an outage.Reader).
func Track(t *jobs.Tracker, rdb redis.UniversalClient) Tracked {
	return Tracked{Tracker: t, Reader: outage.NewReader(rdb)}
}

// ReadBatchStatus reads a batch's status, with its webhook's delivery when
// it has a webhook, and the providers down while it runs when t is also a
// DownReader.
func ReadBatchStatus(ctx context.Context, t StatusReader, id string) (BatchStatus, error) {
	b, err := t.Get(ctx, id)
	if err != nil {
		return BatchStatus{}, err
	}
	c, err := t.Counts(ctx, id)
	if err != nil {
		return BatchStatus{}, err
	}
	var hook *jobs.WebhookState
	if b.Webhook != "" {
		st, ok, err := t.WebhookState(ctx, id)
		if err != nil {
			return BatchStatus{}, err
		}
		if !ok {
			st = jobs.WebhookState{Status: jobs.WebhookPending, Delivery: webhook.DeliveryID(b.ID, webhook.EventBatchCompleted)}
		}
		hook = &st
	}
	st := NewBatchStatus(b, c, hook)
	if d, ok := t.(DownReader); ok && !jobs.Ended(st.State) {
		if st.ProvidersDown, err = d.ProvidersDown(ctx, b); err != nil {
			return BatchStatus{}, err
		}
	}
	return st, nil
}

// PrintProvidersDown writes a line for each provider down.
func PrintProvidersDown(w io.Writer, ds []outage.Down) {
	for _, d := range ds {
		fmt.Fprintf(w, "provider down: %s (%s) since %s, until %s: %s; fallback chains skip it until then\n",
			d.Provider, d.Model, d.Since.UTC().Format(time.DateTime), d.Until.UTC().Format(time.DateTime+" MST"), d.Reason)
	}
}
