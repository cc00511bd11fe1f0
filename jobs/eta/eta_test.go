package eta

import (
	"testing"
	"time"
)

// TestRateAfterAPause: 600 items in the first 10 minutes, a 50-minute
// pause, then 20 items a minute. Since creation the rate is 620/65 ≈ 9.5 a
// minute; the window sees the 20 a minute of now.
func TestRateAfterAPause(t *testing.T) {
	w := &Window{Span: 5 * time.Minute}
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	at := func(min float64) time.Time { return t0.Add(time.Duration(min * float64(time.Minute))) }
	for m := 0; m <= 10; m++ {
		w.Observe("b", at(float64(m)), 60*m)
	}
	// Paused: the page is refreshed, nothing ends.
	for m := 11; m <= 60; m++ {
		w.Observe("b", at(float64(m)), 600)
	}
	if r, ok := w.Observe("b", at(60.5), 600); !ok || r != 0 {
		t.Errorf("during the pause: rate %v %v, want 0", r, ok)
	}
	var r float64
	var ok bool
	for m := 61; m <= 66; m++ {
		r, ok = w.Observe("b", at(float64(m)), 600+20*(m-60))
	}
	if !ok || r < 19.9 || r > 20.1 {
		t.Errorf("after the pause: %v items/min (%v), want 20", r, ok)
	}
	if d, ok := Left(200, r); !ok || d != 10*time.Minute {
		t.Errorf("left: %v %v", d, ok)
	}
}

func TestNoRateFromOneSampleOrTooShortASpan(t *testing.T) {
	var w Window
	t0 := time.Now()
	if _, ok := w.Observe("b", t0, 5); ok {
		t.Error("a rate from one sample")
	}
	if _, ok := w.Observe("b", t0.Add(5*time.Second), 9); ok {
		t.Error("a rate from 5 seconds")
	}
	if r, ok := w.Observe("b", t0.Add(time.Minute), 65); !ok || r != 60 {
		t.Errorf("rate %v %v, want 60/min", r, ok)
	}
	if _, ok := Left(10, 0); ok {
		t.Error("an ETA at rate 0")
	}
}

func TestIdleBatchesAreForgotten(t *testing.T) {
	w := &Window{Span: time.Minute}
	t0 := time.Now()
	w.Observe("old", t0, 1)
	w.Observe("new", t0.Add(3*time.Minute), 1)
	if _, kept := w.batches["old"]; kept || len(w.batches) != 1 {
		t.Errorf("batches kept: %v", w.batches)
	}
}
