// Package eta estimates a batch's rate and time left from its recent
// progress, not from its whole life: a rate averaged since the batch was
// created is wrong after a pause, a budget stop, or in batch mode, where
// answers arrive in bursts hours apart.
//
// A Window keeps, per batch, the (time, items ended) samples its caller
// observed (the dashboard samples at each view and refresh) and answers the
// rate over the last Span. It imports no other project package.
package eta

import (
	"sync"
	"time"
)

// DefaultSpan is the window of a zero Window: the last 10 minutes.
const DefaultSpan = 10 * time.Minute

// minSpan is the least time two samples must lie apart to give a rate.
const minSpan = 20 * time.Second

// Window keeps recent progress samples per batch. The zero value is ready
// to use; it is safe for concurrent use.
type Window struct {
	// Span is how far back the rate looks. Zero means DefaultSpan.
	Span time.Duration

	mu      sync.Mutex
	batches map[string][]sample
}

type sample struct {
	at    time.Time
	ended int
}

// Observe records that batch had ended items at now and returns its rate,
// items per minute over the window, with ok false until two samples at
// least 20 s apart lie in it (the caller then falls back on another
// estimate). The first sample before the window is kept as its baseline,
// so a window that began during a pause shows the pause.
func (w *Window) Observe(batch string, now time.Time, ended int) (perMin float64, ok bool) {
	span := w.Span
	if span <= 0 {
		span = DefaultSpan
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.batches == nil {
		w.batches = map[string][]sample{}
	}
	ss := w.batches[batch]
	if n := len(ss); n == 0 || now.After(ss[n-1].at) {
		ss = append(ss, sample{at: now, ended: ended})
	}
	// Drop samples before the window, keeping the last of them as baseline.
	from := now.Add(-span)
	i := 0
	for i+1 < len(ss) && !ss[i+1].at.After(from) {
		i++
	}
	ss = ss[i:]
	w.batches[batch] = ss
	w.forgetIdle(now, 2*span)
	first, last := ss[0], ss[len(ss)-1]
	el := last.at.Sub(first.at)
	if el < minSpan {
		return 0, false
	}
	return float64(last.ended-first.ended) / el.Minutes(), true
}

// forgetIdle drops batches not observed for idle, so the window's memory
// stays bounded by the batches people look at.
func (w *Window) forgetIdle(now time.Time, idle time.Duration) {
	for id, ss := range w.batches {
		if now.Sub(ss[len(ss)-1].at) > idle {
			delete(w.batches, id)
		}
	}
}

// Left is the time to end the remaining items at perMin items a minute
// (ok false for a rate of zero: no estimate).
func Left(remaining int, perMin float64) (time.Duration, bool) {
	if perMin <= 0 {
		return 0, false
	}
	return time.Duration(float64(remaining) / perMin * float64(time.Minute)), true
}
