package llm

import (
	"context"
	"sync/atomic"
)

type tenantKey struct{}

// tenantCall is what WithTenant puts in a context: the tenant, and whether
// a model call of this context was already let through (see MarkStarted).
type tenantCall struct {
	name    string
	started atomic.Bool
}

// WithTenant returns ctx carrying the tenant whose item a model call
// serves (fair shares and per-tenant metrics read it; "" is no tenant).
// Give each task its own: it also remembers whether the task's work has
// started (MarkStarted).
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, &tenantCall{name: tenant})
}

// TenantFrom returns the tenant WithTenant put in ctx, or "".
func TenantFrom(ctx context.Context) string {
	if tc, ok := ctx.Value(tenantKey{}).(*tenantCall); ok {
		return tc.name
	}
	return ""
}

// MarkStarted records that a model call of ctx's task was let through, and
// reports whether one was already. A gate defers only a task's first call:
// sending back a task that already paid for calls would pay for them again.
// Without WithTenant it reports false and records nothing.
func MarkStarted(ctx context.Context) (already bool) {
	if tc, ok := ctx.Value(tenantKey{}).(*tenantCall); ok {
		return tc.started.Swap(true)
	}
	return false
}

// Started reports whether MarkStarted was called for ctx's task.
func Started(ctx context.Context) bool {
	tc, ok := ctx.Value(tenantKey{}).(*tenantCall)
	return ok && tc.started.Load()
}
