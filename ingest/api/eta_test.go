package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// TestRateFollowsRecentProgress: the batch's rate and ETA come from what
// ended while a client followed it (1 item in the last minute: 1 a minute,
// 1 left: 60 s), not from the average since it was created (2 in a minute).
func TestRateFollowsRecentProgress(t *testing.T) {
	base, offset := time.Now(), time.Duration(0)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return base.Add(offset) } })
	r := e.submit(tokenA) // 3 items: 2 queued, 1 skipped (ended)
	var v BatchView
	if code := e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &v); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if _, _, err := e.tracker.Record(context.Background(), r.ID, jobs.Entry{Item: "x-1", Source: "s", Status: jobs.StatusDone}); err != nil {
		t.Fatal(err)
	}
	offset = time.Minute
	if code := e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &v); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if v.State != jobs.StateRunning || v.RatePerMin < 0.99 || v.RatePerMin > 1.01 || v.ETASeconds == nil || *v.ETASeconds < 59 || *v.ETASeconds > 61 {
		t.Errorf("state %s, rate %v/min, ETA %v s: want running, 1/min, 60 s", v.State, v.RatePerMin, v.ETASeconds)
	}
}
