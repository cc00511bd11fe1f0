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
	queue, _ := asynq.GetQueueName(ctx)
	if w.bm == nil || !jobs.UsesBatchAPI(p.Options, queue) {
		return online
	}
	return w.bm.For(online, tenant, batchmode.Item{Batch: p.Batch, Out: p.Out})
}

// modelCtxKey carries the task's model client (modelFor) from admitTenant
// to complete. It is a bridge: once the document and image stages take
// their model as a parameter, the worker hands them modelFor's client and
// this key goes.
type modelCtxKey struct{}

// complete calls the model client of the task ctx works on (see modelFor);
// outside a task, the configured model unbound.
func (w *Worker) complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if c, ok := ctx.Value(modelCtxKey{}).(llm.Client); ok {
		return c.Complete(ctx, req)
	}
	return w.cfg.Model.Complete(ctx, req)
}
