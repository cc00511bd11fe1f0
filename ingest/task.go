package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
)

// ProcessTask runs an ingest task (ingesttask.Type), as enqueued by the
// scheduler. The batch ID comes from the task ID, so a retried task resumes
// its batch instead of starting a second one.
func (in *Ingester) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := ingesttask.Decode(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	id, _ := asynq.GetTaskID(ctx)
	h := sha256.Sum256([]byte(id))
	now := in.now()
	batch := now.UTC().Format("20060102-150405") + "-s" + hex.EncodeToString(h[:3])
	if id != "" {
		// Stable across retries of this task: the date of its first run is
		// not known here, so the ID is the task's alone.
		batch = "sched-" + hex.EncodeToString(h[:8])
	}
	if p.Model == "" {
		p.Provider, p.Model = in.Provider, in.Model
	}
	res, err := in.Run(ctx, Options{Spec: p.Spec, BatchID: batch, Resume: true, Prompts: in.Prompts})
	if err != nil {
		return fmt.Errorf("scheduled ingest %q: %w", p.Schedule, err)
	}
	if in.Logger != nil {
		in.Logger.InfoContext(ctx, "scheduled batch ingested", "schedule", p.Schedule, "batch_id", res.BatchID,
			"total", res.Total, "enqueued", res.Enqueued, "skipped", res.Skipped)
	}
	return nil
}
