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
	Schedule string `json:"schedule,omitempty"`
	// Spec is the batch to create.
	Spec
}

// NewIngestTask builds an ingest task. It runs on the critical queue: it is
// short, and everything it enqueues waits for it.
func NewIngestTask(p IngestPayload) (*asynq.Task, error) {
	p.V = PayloadVersion
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPayload, err)
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
