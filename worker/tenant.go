package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// TenantPause is the longest a paused item waits before it looks at its
// tenant's budget again (sooner when the day or month ends first).
const TenantPause = 5 * time.Minute

// admitTenant starts an item, map or reduce task's work for its tenant: it
// returns the task's model client (modelFor, bound to the batch's tenant,
// which the fair-share gate and the metrics read), and a *PausedError
// while the tenant has no budget left.
func (w *Worker) admitTenant(ctx context.Context, p jobs.ItemPayload) (llm.Client, error) {
	b := w.cfg.Tenants
	if b == nil {
		// No budgets or shares, but batch mode shares identical requests
		// only within a tenant, so it must know the batch's.
		name := ""
		if w.usesBatchMode(ctx, p) {
			var err error
			if name, err = w.cfg.Tracker.ContentScope(ctx, p.Batch); err != nil {
				return nil, err
			}
		}
		return w.modelFor(ctx, p, name), nil
	}
	name, err := b.BatchTenant(ctx, p.Batch)
	if err != nil {
		return nil, err
	}
	model := w.modelFor(ctx, p, name)
	err = b.CheckSpent(ctx, name)
	var be *tenants.BudgetError
	if errors.As(err, &be) {
		d := TenantPause
		if until := be.Until.Sub(w.now()); until > 0 && until < d {
			d = until
		}
		// Spread the paused items' returns over a few seconds.
		return nil, &PausedError{Tenant: name, RetryAfter: d + rand.N(5*time.Second), Err: err}
	}
	if err != nil {
		return nil, err
	}
	return model, nil
}

// admit is the start of a map or reduce task: the batch's stop or cancel,
// then its tenant (see admitTenant).
func (w *Worker) admit(ctx context.Context, p jobs.ItemPayload) (llm.Client, error) {
	if err := w.stopped(ctx, p); err != nil {
		return nil, err
	}
	return w.admitTenant(ctx, p)
}

// itemRecorded counts an item that Tracker.Record has just recorded (once
// per item): the metrics by tenant, and its tokens and cost charged to its
// tenant's day and month. A failed charge is logged; the item stays
// recorded.
func (w *Worker) itemRecorded(ctx context.Context, p jobs.ItemPayload, e jobs.Entry, start time.Time) {
	tenant := ""
	if b := w.cfg.Tenants; b != nil {
		var err error
		if tenant, err = b.BatchTenant(ctx, p.Batch); err != nil {
			w.log.WarnContext(ctx, "item not charged to its tenant", "batch_id", p.Batch, "item", p.Item, "error", err.Error())
		} else if err := b.Charge(ctx, tenant, tenants.Spend{Cost: e.Cost, Tokens: int64(e.InputTokens + e.OutputTokens)}); err != nil {
			w.log.WarnContext(ctx, "item not charged to its tenant", "batch_id", p.Batch, "item", p.Item, "tenant", tenant, "error", err.Error())
		}
	}
	w.cfg.Metrics.ItemEndedFor(tenant, p.Kind, e.Status, w.now().Sub(start))
}
