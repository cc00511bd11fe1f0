package llm

import "context"

type tenantKey struct{}

// WithTenant returns ctx carrying the tenant whose item a model call
// serves (fair shares and per-tenant metrics read it; "" is no tenant).
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant WithTenant put in ctx, or "".
func TenantFrom(ctx context.Context) string {
	s, _ := ctx.Value(tenantKey{}).(string)
	return s
}
