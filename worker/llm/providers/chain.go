package providers

import (
	"context"

	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

// Chain is what a worker needs for fallback chains (worker.Config's
// Fallbacks, Outages and FallbackPolicy).
type Chain struct {
	Fallbacks map[string]llm.Client
	Outages   llm.Outages
	Policy    llm.FallbackPolicy
}

// OpenChain opens the fallback presets names (OpenFallbacks), each behind
// its own tenants' fair-share gate when budgets is set
// (ratelimit.TenantGates, which refuses one priced in another currency
// than the budgets), with the outage state in base.Redis and the policy of
// the primary's profile (its fallback_* keys under the flags).
func OpenChain(ctx context.Context, base Config, names []string, primary llm.Profile, budgets *tenants.Budgets, concurrency int) (Chain, error) {
	fbs, err := OpenFallbacks(ctx, base, names)
	if err != nil {
		return Chain{}, err
	}
	var onDefer func(string)
	if base.Metrics != nil {
		onDefer = base.Metrics.Deferred
	}
	if fbs, err = ratelimit.TenantGates(fbs, base.Redis, budgets, concurrency, onDefer); err != nil {
		return Chain{}, err
	}
	pol := primary.FallbackPolicy().WithDefaults()
	var out llm.Outages // nil without Redis: each worker's own
	if base.Redis != nil {
		out = ratelimit.Outages(base.Redis, pol.CoolDown)
	}
	return Chain{Fallbacks: fbs, Outages: out, Policy: pol}, nil
}
