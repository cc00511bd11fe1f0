package ingesttask

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
)

// Type runs an ingest as a task: the scheduler enqueues one at each
// tick, so the scheduler itself stays light.
const Type = "llamapipe:ingest"

// Payload describes a batch to create: references and options only.
type Payload struct {
	V int `json:"v"`
	// Schedule names the schedule entry that enqueued it.
	Schedule string `json:"schedule,omitempty"`
	// Spec is the batch to create.
	jobs.Spec
}

// NewTask builds an ingest task. It runs on the critical queue: it is
// short, and everything it enqueues waits for it.
func NewTask(p Payload) (*asynq.Task, error) {
	p.V = jobs.PayloadVersion
	if err := speccheck.Validate(p.Spec); err != nil {
		return nil, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode ingest payload: %w", err)
	}
	return asynq.NewTask(Type, b, asynq.Queue(jobs.QueueCritical), asynq.MaxRetry(10), asynq.Retention(jobs.Retention)), nil
}

// Decode decodes an ingest payload.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %w", jobs.ErrBadPayload, err)
	}
	if p.V > jobs.PayloadVersion || p.V < 1 || len(p.Sources) == 0 || p.Out == "" {
		return p, fmt.Errorf("%w: ingest payload v%d with %d sources", jobs.ErrBadPayload, p.V, len(p.Sources))
	}
	return p, nil
}
