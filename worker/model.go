package worker

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/batchmode"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// errDeferred is returned while an item waits for its batch answer (see
// package batchmode): not a failure, the task waits in the retry set.
var errDeferred = batchmode.ErrDeferred

// modelFor returns the model client of one task of item p for tenant: the
// configured model bound to the task (the fair-share gate and the metrics
// read its tenant and started flag from it), wrapped by batch mode when
// the item's batch uses the provider's batch API and the worker has one.
// Online items never pass through batch mode.
func (w *Worker) modelFor(ctx context.Context, p jobs.ItemPayload, tenant string) llm.Client {
	online := llm.For(w.cfg.Model, llm.NewTask(tenant))
	if !w.usesBatchMode(ctx, p) {
		return traced{online}
	}
	return traced{w.bm.For(online, tenant, batchmode.Item{Batch: p.Batch, Out: p.Out})}
}

// usesBatchMode reports whether item p's model calls go through batch mode.
func (w *Worker) usesBatchMode(ctx context.Context, p jobs.ItemPayload) bool {
	queue, _ := asynq.GetQueueName(ctx)
	return w.bm != nil && jobs.UsesBatchAPI(p.Options, queue)
}
