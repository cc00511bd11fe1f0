package batchtask

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
)

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
		return nil, fmt.Errorf("%w: collect needs a group", jobs.ErrBadPayload)
	}
	b, err := json.Marshal(CollectPayload{V: jobs.PayloadVersion, Group: group})
	if err != nil {
		return nil, fmt.Errorf("encode collect payload: %w", err)
	}
	id := fmt.Sprintf("batch-collect:%s:%d", group, window.UnixMilli())
	return asynq.NewTask(TypeBatchCollect, b, asynq.Queue(jobs.QueueCritical), asynq.TaskID(id), asynq.ProcessIn(delay),
		asynq.MaxRetry(20), asynq.Retention(time.Hour)), nil
}

// NewPollTask builds the poll of a provider job, due after delay.
func NewPollTask(p PollPayload, delay time.Duration) (*asynq.Task, error) {
	p.V = jobs.PayloadVersion
	if p.Group == "" || p.Job == "" {
		return nil, fmt.Errorf("%w: poll needs a group and a job", jobs.ErrBadPayload)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode poll payload: %w", err)
	}
	id := fmt.Sprintf("batch-poll:%s:%s:%d", p.Group, p.Job, p.Attempt)
	return asynq.NewTask(TypeBatchPoll, b, asynq.Queue(jobs.QueueCritical), asynq.TaskID(id), asynq.ProcessIn(delay),
		asynq.MaxRetry(50), asynq.Retention(time.Hour)), nil
}

// DecodeCollect decodes a collect payload.
func DecodeCollect(b []byte) (CollectPayload, error) {
	var p CollectPayload
	if err := json.Unmarshal(b, &p); err != nil || p.Group == "" {
		return p, fmt.Errorf("%w: collect payload: %v", jobs.ErrBadPayload, err)
	}
	return p, checkVersion(p.V)
}

// DecodePoll decodes a poll payload.
func DecodePoll(b []byte) (PollPayload, error) {
	var p PollPayload
	if err := json.Unmarshal(b, &p); err != nil || p.Group == "" || p.Job == "" {
		return p, fmt.Errorf("%w: poll payload: %v", jobs.ErrBadPayload, err)
	}
	return p, checkVersion(p.V)
}

func checkVersion(v int) error {
	if v > jobs.PayloadVersion || v < 1 {
		return fmt.Errorf("%w: version %d (this build reads up to %d)", jobs.ErrBadPayload, v, jobs.PayloadVersion)
	}
	return nil
}
