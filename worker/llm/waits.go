package llm

import (
	"context"
	"sync/atomic"
	"time"
)

// Waits sums how long a model call waited in its own process before it
// was sent (a shared quota, a provider's hold, the fair-share gate), so
// that whoever times the call tells the model's latency from the wait.
type Waits struct{ ns atomic.Int64 }

type waitsKey struct{}

// WithWaits returns ctx carrying a fresh Waits, which AddWait below ctx
// adds to.
func WithWaits(ctx context.Context) (context.Context, *Waits) {
	w := &Waits{}
	return context.WithValue(ctx, waitsKey{}, w), w
}

// AddWait adds d to ctx's Waits (nothing without one).
func AddWait(ctx context.Context, d time.Duration) {
	if w, ok := ctx.Value(waitsKey{}).(*Waits); ok {
		w.ns.Add(int64(d))
	}
}

// Total is the time waited so far.
func (w *Waits) Total() time.Duration { return time.Duration(w.ns.Load()) }
