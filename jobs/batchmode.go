package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Model modes (Options.ModelMode).
const (
	ModelOnline = "online"
	ModelBatch  = "batch"
	ModelAuto   = "auto"
)

// ValidModelMode reports whether m is a model mode ("" is online).
func ValidModelMode(m string) bool {
	switch m {
	case "", ModelOnline, ModelBatch, ModelAuto:
		return true
	}
	return false
}

// UsesBatchAPI reports whether items of a batch with these options on this
// queue go through the provider's batch API: batch mode, or auto mode on
// the nightly queue.
func UsesBatchAPI(o Options, queue string) bool {
	return o.ModelMode == ModelBatch || (o.ModelMode == ModelAuto && queue == QueueNightly)
}

// Batch-mode task types: a collector cuts the requests that items left
// pending into provider input files and submits them; a poller follows one
// provider job (re-enqueued with a delay until the job is done) and hands
// every answer back to the item that waits for it.
const (
	TypeBatchCollect = "llamapipe:batch-collect"
	TypeBatchPoll    = "llamapipe:batch-poll"
)

// CollectPayload names the request group (one model of one provider) to
// collect.
type CollectPayload struct {
	V     int    `json:"v"`
	Group string `json:"group"`
}

// PollPayload names a provider job to follow.
type PollPayload struct {
	V     int    `json:"v"`
	Group string `json:"group"`
	Job   string `json:"job"`
	// Attempt counts the polls so far (each poll is a task of its own).
	Attempt int `json:"attempt"`
}

// NewCollectTask builds the collector task of a group for one time window:
// every request left pending within the window is collected by the same
// task (its ID is the group and the window's start in milliseconds, so
// windows shorter than a second never share an ID with a task that already
// ran), after delay.
func NewCollectTask(group string, window time.Time, delay time.Duration) (*asynq.Task, error) {
	if group == "" {
		return nil, fmt.Errorf("%w: collect needs a group", ErrBadPayload)
	}
	b, err := json.Marshal(CollectPayload{V: PayloadVersion, Group: group})
	if err != nil {
		return nil, fmt.Errorf("encode collect payload: %w", err)
	}
	id := fmt.Sprintf("batch-collect:%s:%d", group, window.UnixMilli())
	return asynq.NewTask(TypeBatchCollect, b, asynq.Queue(QueueCritical), asynq.TaskID(id), asynq.ProcessIn(delay),
		asynq.MaxRetry(20), asynq.Retention(time.Hour)), nil
}

// NewPollTask builds the poll of a provider job, due after delay.
func NewPollTask(p PollPayload, delay time.Duration) (*asynq.Task, error) {
	p.V = PayloadVersion
	if p.Group == "" || p.Job == "" {
		return nil, fmt.Errorf("%w: poll needs a group and a job", ErrBadPayload)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode poll payload: %w", err)
	}
	id := fmt.Sprintf("batch-poll:%s:%s:%d", p.Group, p.Job, p.Attempt)
	return asynq.NewTask(TypeBatchPoll, b, asynq.Queue(QueueCritical), asynq.TaskID(id), asynq.ProcessIn(delay),
		asynq.MaxRetry(50), asynq.Retention(time.Hour)), nil
}

// DecodeCollect decodes a collect payload.
func DecodeCollect(b []byte) (CollectPayload, error) {
	var p CollectPayload
	if err := json.Unmarshal(b, &p); err != nil || p.Group == "" {
		return p, fmt.Errorf("%w: collect payload: %v", ErrBadPayload, err)
	}
	return p, checkVersion(p.V)
}

// DecodePoll decodes a poll payload.
func DecodePoll(b []byte) (PollPayload, error) {
	var p PollPayload
	if err := json.Unmarshal(b, &p); err != nil || p.Group == "" || p.Job == "" {
		return p, fmt.Errorf("%w: poll payload: %v", ErrBadPayload, err)
	}
	return p, checkVersion(p.V)
}
