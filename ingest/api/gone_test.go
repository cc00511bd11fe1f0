package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// A batch whose records expired (a tiny retention fast-forwards it) or
// vanished is answered 410 with its state to its tenant, 404 to others.
func TestGoneBatchIsExpiredOrLost(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.submit(tokenA)
	b, err := e.tracker.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tracker.Expire(ctx, b, 10*time.Millisecond, time.Now()); err != nil { // what finalize does
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	var gone struct{ ID, State, Error string }
	if code := e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &gone); code != http.StatusGone || gone.State != jobs.StateExpired || gone.ID != r.ID {
		t.Errorf("expired batch: %d %+v, want 410 expired", code, gone)
	}
	if code := e.do("GET", "/v1/batches/"+r.ID, tokenB, nil, nil, nil); code != http.StatusNotFound {
		t.Errorf("another tenant's expired batch: %d, want 404", code)
	}
	if code := e.do("GET", "/v1/batches/"+r.ID+"/items", tokenA, nil, nil, nil); code != http.StatusGone {
		t.Errorf("expired batch's items: %d, want 410", code)
	}

	r2 := e.submit(tokenA)
	if err := e.api.cfg.Redis.Del(ctx, jobs.BatchKey("", r2.ID)).Err(); err != nil { // Redis lost it
		t.Fatal(err)
	}
	gone.State = ""
	if code := e.do("GET", "/v1/batches/"+r2.ID, tokenA, nil, nil, &gone); code != http.StatusGone || gone.State != jobs.StateLost {
		t.Errorf("lost batch: %d %+v, want 410 lost", code, gone)
	}
	if code := e.do("GET", "/v1/batches/never", tokenA, nil, nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown batch: %d, want 404", code)
	}
	var list struct{ Batches []BatchView }
	if code := e.do("GET", "/v1/batches", tokenA, nil, nil, &list); code != http.StatusOK || len(list.Batches) != 0 {
		t.Errorf("list: %d, %d batches, want none (both gone)", code, len(list.Batches))
	}
}
