package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/storage"
)

// idemRecord is what an Idempotency-Key maps to in Redis.
type idemRecord struct {
	// Request is the canonical request the key was first used with.
	Request json.RawMessage `json:"request"`
	// ID is the batch ID reserved for it.
	ID string `json:"id"`
	// Response is set once the first request succeeded.
	Response *SubmitResponse `json:"response,omitempty"`
}

// idempotent calls run once per (tenant, Idempotency-Key): the first request
// reserves the key with SETNX (for idempotencyLease) and stores its answer
// (for IdempotencyTTL);
// a repeat with the same key gets the same answer with 200 (after waiting
// up to IdempotencyWait for a first request still running; then 409); a
// repeat with a different request gets 422. A failed first request frees
// the key (also one whose listing stopped part-way: its batch ended
// cancelled, and a new submit makes a new one). The first request's answer
// is stored even when its client went away (run lists on a context apart
// from the request's), so a retry gets the batch it made. Without the
// header, run is just called.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, tenant, scope string, req any,
	run func(ctx context.Context, id string) (SubmitResponse, error)) {
	ctx := r.Context()
	key := r.Header.Get("Idempotency-Key")
	newID := ingest.NewBatchID(s.cfg.Now())
	if key == "" {
		s.answer(ctx, w, run, newID, http.StatusCreated, nil)
		return
	}
	if len(key) > 255 {
		writeError(w, http.StatusBadRequest, "Idempotency-Key: at most 255 characters")
		return
	}
	canon, err := json.Marshal(struct {
		Scope string `json:"scope"`
		Path  string `json:"path"`
		Req   any    `json:"req"`
	}{scope, r.URL.Path, req})
	if err != nil {
		s.internal(w, "encode request", err)
		return
	}
	rkey := jobs.IdempotencyKey(s.cfg.KeyPrefix, tenant, key)
	rec := idemRecord{Request: canon, ID: newID}
	b, _ := json.Marshal(rec)
	first, err := s.cfg.Redis.SetNX(ctx, rkey, b, idempotencyLease).Result()
	if err != nil {
		s.internal(w, "idempotency key", err)
		return
	}
	if first {
		release := s.holdLease(ctx, rkey)
		s.answer(ctx, w, run, newID, http.StatusCreated, func(resp *SubmitResponse, err error) {
			release()
			// The request's context may be gone: record the outcome anyway.
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err != nil {
				s.cfg.Redis.Del(c, rkey)
				return
			}
			rec.Response = resp
			b, _ := json.Marshal(rec)
			if err := s.cfg.Redis.Set(c, rkey, b, IdempotencyTTL).Err(); err != nil {
				s.log.Error("store idempotent answer", "err", err)
			}
		})
		return
	}
	deadline := time.Now().Add(s.cfg.IdempotencyWait) // real time, whatever the clock
	for {
		raw, err := s.cfg.Redis.Get(ctx, rkey).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			writeError(w, http.StatusConflict, "a request with this Idempotency-Key failed just now: send it again")
			return
		case err != nil:
			s.internal(w, "idempotency key", err)
			return
		}
		var got idemRecord
		if err := json.Unmarshal(raw, &got); err != nil {
			s.internal(w, "idempotency record", err)
			return
		}
		if string(got.Request) != string(canon) {
			writeError(w, http.StatusUnprocessableEntity, "this Idempotency-Key was used with a different request")
			return
		}
		if got.Response != nil {
			writeJSON(w, http.StatusOK, got.Response)
			return
		}
		if !time.Now().Before(deadline) {
			writeError(w, http.StatusConflict, "a request with this Idempotency-Key is still running: try again later")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// holdLease keeps an Idempotency-Key reserved while its first request runs
// (a listing may outlast idempotencyLease), renewing it until release is
// called. The key still expires idempotencyLease after a server died.
func (s *Server) holdLease(ctx context.Context, rkey string) (release func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(idempotencyLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.cfg.Redis.Expire(ctx, rkey, idempotencyLease).Err(); err != nil && ctx.Err() == nil {
					s.log.Warn("renew idempotency key", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (s *Server) answer(ctx context.Context, w http.ResponseWriter, run func(context.Context, string) (SubmitResponse, error),
	id string, code int, done func(*SubmitResponse, error)) {
	resp, err := run(ctx, id)
	if done != nil {
		done(&resp, err)
	}
	if err != nil {
		var br *badRequest
		var be *tenants.BudgetError
		switch {
		case errors.As(err, &br):
			writeError(w, http.StatusBadRequest, br.msg)
		case errors.As(err, &be):
			writeJSON(w, http.StatusPaymentRequired, newBudgetRefusal(be))
		case errors.Is(err, jobs.ErrNoBatch):
			writeError(w, http.StatusNotFound, "no such batch")
		case errors.Is(err, ingest.ErrStopped):
			w.Header().Set("Retry-After", "30")
			writeError(w, http.StatusServiceUnavailable, "the listing of batch "+id+" stopped part-way (the server is shutting down, or a source or the queue failed): "+
				"the batch was cancelled and its queued items removed; submit again")
		case errors.Is(err, storage.ErrNotExist):
			writeError(w, http.StatusBadRequest, "a location does not exist: "+err.Error())
		default:
			s.internal(w, "create batch", err)
		}
		return
	}
	writeJSON(w, code, resp)
}
