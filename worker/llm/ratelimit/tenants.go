package ratelimit

import (
	"cmp"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// TenantGate puts model behind the tenants' fair-share gate, shared through
// rdb by every worker of the same provider and model: the tenants file's
// slots (default: half the worker's concurrency) and waiting room (default:
// half the slots), so some of the worker's tasks are always free to pass
// over one tenant's backlog. Without a tenants file (b nil) it returns
// model as it is. onDefer, when set, counts deferred calls by tenant.
func TenantGate(model llm.Client, rdb redis.UniversalClient, b *tenants.Budgets, concurrency int, onDefer func(tenant string)) llm.Client {
	if b == nil {
		return model
	}
	tc := b.Config()
	slots := cmp.Or(tc.Slots, max(1, concurrency/2))
	waiting := cmp.Or(tc.Waiting, max(1, slots/2))
	p := model.Profile()
	return FairShare(model, rdb, jobs.ModelQuotaName(cmp.Or(p.Preset, p.Provider), p.Model), FairShareOptions{
		Slots: slots, Waiting: waiting, Share: func(t string) float64 { return b.Config().Share(t) }, OnDefer: onDefer})
}
