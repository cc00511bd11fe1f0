package worker

import (
	"cmp"
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
	task := llm.NewTask(tenant)
	online := llm.For(w.cfg.Model, task)
	if !w.usesBatchMode(ctx, p) {
		if len(p.Options.Fallback) > 0 {
			return w.newTraced(ctx, w.fallbackChain(ctx, online, task, p.Options.Fallback), p)
		}
		return w.newTraced(ctx, online, p)
	}
	return w.newTraced(ctx, w.bm.For(online, tenant, batchmode.Item{Batch: p.Batch, Out: p.Out}), p)
}

// usesBatchMode reports whether item p's model calls go through batch mode.
func (w *Worker) usesBatchMode(ctx context.Context, p jobs.ItemPayload) bool {
	queue, _ := asynq.GetQueueName(ctx)
	return w.bm != nil && jobs.UsesBatchAPI(p.Options, queue)
}

// fallbackChain is online followed by the worker's clients of the presets
// names (llm.NewFallback); batch mode stays with the primary.
func (w *Worker) fallbackChain(ctx context.Context, online llm.Client, task *llm.Task, names []string) llm.Client {
	prof := online.Profile()
	name := cmp.Or(prof.Preset, prof.Provider)
	chain := []llm.Link{{Name: name, Quota: jobs.ModelQuotaName(name, prof.Model), Client: online}}
	for _, n := range names {
		c, ok := w.cfg.Fallbacks[n]
		if !ok {
			w.log.WarnContext(ctx, "fallback left out: this worker has no client for it (start it with --fallback)", "fallback", n)
			continue
		}
		if n == name {
			continue
		}
		chain = append(chain, llm.Link{Name: n, Quota: jobs.ModelQuotaName(n, c.Profile().Model), Client: llm.For(c, task)})
	}
	if len(chain) == 1 {
		return online
	}
	return llm.NewFallback(chain, w.outages, w.cfg.FallbackPolicy)
}
