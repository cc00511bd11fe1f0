package ratelimit

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

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

// TenantGates puts each of fallbacks (a fallback chain's later providers,
// by preset) behind its own fair-share gate as TenantGate does the
// primary, so that a tenant over its share is deferred whichever provider
// would answer. A fallback priced in another currency than the tenants'
// money budgets is refused (tenants.ErrCurrency, naming the preset).
// Without a tenants file (b nil) it returns fallbacks as they are.
func TenantGates(fallbacks map[string]llm.Client, rdb redis.UniversalClient, b *tenants.Budgets, concurrency int, onDefer func(tenant string)) (map[string]llm.Client, error) {
	if b == nil {
		return fallbacks, nil
	}
	out := make(map[string]llm.Client, len(fallbacks))
	for _, name := range slices.Sorted(maps.Keys(fallbacks)) {
		c := fallbacks[name]
		if err := b.CheckCurrency(c.Profile().Prices.Currency); err != nil {
			return nil, fmt.Errorf("fallback %s: %w", name, err)
		}
		out[name] = TenantGate(c, rdb, b, concurrency, onDefer)
	}
	return out, nil
}
