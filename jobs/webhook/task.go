package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
)

// The completion webhook's task and the event it sends: part of the
// contract between finalize (which enqueues it), the worker (which delivers
// it) and the API (which shows it).

// TypeTask tells a batch's completion webhook that the batch ended.
const TypeTask = "llamapipe:webhook"

// EventBatchCompleted is the event of a batch whose manifest and report were
// written (whether its items succeeded, failed or were cancelled).
const EventBatchCompleted = "batch.completed"

// MaxRetry is how often a webhook call is retried (with exponential
// backoff: about seven hours in all) before its delivery is given up.
const MaxRetry = 15

// Payload is the payload of a TypeTask task: the batch only; the
// worker reads everything else (and the URL) from the batch record.
type Payload struct {
	V     int    `json:"v"`
	Batch string `json:"batch"`
}

// TaskID is the asynq task ID of a batch's completion webhook: it is
// enqueued once however often the batch is finalized.
func TaskID(batch string) string { return "webhook:" + batch }

// DeliveryID is the X-Llamapipe-Delivery value of a batch's event:
// the same on every attempt.
func DeliveryID(batch, event string) string { return batch + ":" + event }

// NewTask builds the task that calls a batch's completion webhook. It
// runs on the critical queue: it is small and someone is waiting for it.
func NewTask(batch string) (*asynq.Task, error) {
	if batch == "" {
		return nil, fmt.Errorf("%w: no batch", jobs.ErrBadPayload)
	}
	b, err := json.Marshal(Payload{V: jobs.PayloadVersion, Batch: batch})
	if err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return asynq.NewTask(TypeTask, b,
		asynq.TaskID(TaskID(batch)),
		asynq.Queue(jobs.QueueCritical),
		asynq.MaxRetry(MaxRetry),
		asynq.Retention(jobs.Retention),
	), nil
}

// Decode decodes a webhook payload.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if p.V > jobs.PayloadVersion || p.V < 1 || p.Batch == "" {
		return p, fmt.Errorf("%w: webhook payload v%d batch %q", jobs.ErrBadPayload, p.V, p.Batch)
	}
	return p, nil
}

// Event is the JSON body of a webhook call. It holds counts and
// locations only: no document text, captions or secrets.
type Event struct {
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

// NewEvent describes a finalized batch for its webhook.
func NewEvent(b jobs.Batch, c jobs.Counts) Event {
	ev := Event{Event: EventBatchCompleted, Delivery: DeliveryID(b.ID, EventBatchCompleted),
		Batch: b.ID, Tenant: b.Tenant, State: jobs.StateFinished, Created: b.Created, Finished: c.Finished,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, Fatal: c.Fatal, RetryOf: b.RetryOf,
		Manifest: joinKey(b.Out, b.ManifestPath()), Report: joinKey(b.Out, b.ReportPath())}
	switch {
	case c.Fatal != "":
		ev.State = jobs.StateStopped
	case c.CancelRequested:
		ev.State = jobs.StateCancelled
	}
	ev.Counts.Total, ev.Counts.Done, ev.Counts.Failed, ev.Counts.Skipped, ev.Counts.Cancelled = c.Total, c.Done, c.Failed, c.Skipped, c.Cancelled
	return ev
}

func joinKey(loc, key string) string { return strings.TrimRight(loc, "/") + "/" + key }
