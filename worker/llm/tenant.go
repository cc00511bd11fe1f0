package llm

import "sync/atomic"

// Task is whose work a run of model calls serves: one item, map or reduce
// task of a tenant. The worker builds one per task and binds its model
// client to it (For); the fair-share gate and the metrics read it from the
// client they were bound to, never from the context.
type Task struct {
	// Tenant is the tenant whose item the calls serve ("" is no tenant).
	Tenant string
	// started is set once a call of the task was let through.
	started atomic.Bool
}

// NewTask returns the Task of one task's calls for tenant.
func NewTask(tenant string) *Task { return &Task{Tenant: tenant} }

// TenantOf returns t's tenant, or "" for a nil t.
func (t *Task) TenantOf() string {
	if t == nil {
		return ""
	}
	return t.Tenant
}

// MarkStarted records that a model call of the task was let through, and
// reports whether one was already. A gate defers only a task's first call:
// sending back a task that already paid for calls would pay for them again.
// On a nil t it reports false and records nothing.
func (t *Task) MarkStarted() (already bool) {
	if t == nil {
		return false
	}
	return t.started.Swap(true)
}

// Started reports whether MarkStarted was called for the task.
func (t *Task) Started() bool { return t != nil && t.started.Load() }

// TaskClient is a Client whose calls depend on the task they serve (the
// fair-share gate, per-tenant metrics, and the wrappers around them).
type TaskClient interface {
	Client
	// ForTask returns the client bound to t: its calls serve t.
	ForTask(t *Task) Client
}

// For returns c bound to t when c (or a client it wraps) depends on the
// task, and c itself otherwise. A wrapper that implements TaskClient binds
// the client it wraps with For as well.
func For(c Client, t *Task) Client {
	if tc, ok := c.(TaskClient); ok {
		return tc.ForTask(t)
	}
	return c
}
