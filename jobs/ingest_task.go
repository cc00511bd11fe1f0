package jobs

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"
)

// TypeIngest runs an ingest as a task: the scheduler enqueues one at each
// tick, so the scheduler itself stays light.
const TypeIngest = "llamapipe:ingest"

// IngestPayload describes a batch to create: references and options only.
type IngestPayload struct {
	V int `json:"v"`
	// Schedule names the schedule entry that enqueued it.
	Schedule string   `json:"schedule,omitempty"`
	Sources  []string `json:"sources"`
	Out      string   `json:"out"`
	Task     string   `json:"task,omitempty"`
	Queue    string   `json:"queue,omitempty"`
	Include  []string `json:"include,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	MaxSize  int64    `json:"max_size,omitempty"`
	MaxRetry int      `json:"max_retry,omitempty"`
	Force    bool     `json:"force,omitempty"`
	Options  Options  `json:"options,omitzero"`
	Provider string   `json:"provider,omitempty"`
	Model    string   `json:"model,omitempty"`
	Webhook  string   `json:"webhook,omitempty"`
	// Tenant owns the batch (its budget and fair share).
	Tenant string `json:"tenant,omitempty"`
}

// NewIngestTask builds an ingest task. It runs on the critical queue: it is
// short, and everything it enqueues waits for it.
func NewIngestTask(p IngestPayload) (*asynq.Task, error) {
	p.V = PayloadVersion
	if len(p.Sources) == 0 || p.Out == "" {
		return nil, fmt.Errorf("%w: ingest needs sources and an output", ErrBadPayload)
	}
	if p.Tenant != "" {
		if err := ValidTenant(p.Tenant); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode ingest payload: %w", err)
	}
	return asynq.NewTask(TypeIngest, b, asynq.Queue(QueueCritical), asynq.MaxRetry(10), asynq.Retention(Retention)), nil
}

// DecodeIngest decodes an ingest payload.
func DecodeIngest(b []byte) (IngestPayload, error) {
	var p IngestPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	if p.V > PayloadVersion || p.V < 1 || len(p.Sources) == 0 || p.Out == "" {
		return p, fmt.Errorf("%w: ingest payload v%d with %d sources", ErrBadPayload, p.V, len(p.Sources))
	}
	return p, nil
}
