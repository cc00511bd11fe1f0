package worker

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/batchmode"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/metrics"
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
	w.outages.labels.Store(chain[0].Quota, [2]string{name, prof.Model})
	for _, n := range names {
		c, ok := w.cfg.Fallbacks[n]
		if !ok {
			w.log.WarnContext(ctx, "fallback left out: this worker has no client for it (start it with --fallback)", "fallback", n)
			continue
		}
		if n == name {
			continue
		}
		quota := jobs.ModelQuotaName(n, c.Profile().Model)
		w.outages.labels.Store(quota, [2]string{n, c.Profile().Model})
		chain = append(chain, llm.Link{Name: n, Quota: quota, Client: llm.For(c, task)})
	}
	if len(chain) == 1 {
		return online
	}
	return llm.NewFallback(chain, w.outages, w.cfg.FallbackPolicy)
}

// watchedOutages is the fallback chains' outage state with the
// llamapipe_provider_down gauge kept beside it (metrics.ProviderDown): a
// chain that finds a provider down, or takes it down, sets it to 1 until
// the down time ends; an answer from it sets it to 0.
type watchedOutages struct {
	llm.Outages
	m *metrics.Metrics
	// labels are each quota's provider (link name) and model, as
	// fallbackChain builds the links.
	labels sync.Map
}

func (o *watchedOutages) observe(quota string, until time.Time) {
	if l, ok := o.labels.Load(quota); ok {
		o.m.ProviderDown(l.([2]string)[0], l.([2]string)[1], until)
	}
}

func (o *watchedOutages) DownUntil(ctx context.Context, quota string) (time.Time, error) {
	until, err := o.Outages.DownUntil(ctx, quota)
	if err == nil {
		o.observe(quota, until)
	}
	return until, err
}

func (o *watchedOutages) Succeeded(ctx context.Context, quota string) error {
	o.observe(quota, time.Time{})
	return o.Outages.Succeeded(ctx, quota)
}

func (o *watchedOutages) MarkDown(ctx context.Context, quota string, d llm.Outage) error {
	err := o.Outages.MarkDown(ctx, quota, d)
	if err == nil {
		o.m.ProviderDown(d.Provider, d.Model, d.Until)
	}
	return err
}
