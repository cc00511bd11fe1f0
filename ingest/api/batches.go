package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
)

// batch returns the tenant's batch, or answers 404; or 410 Gone, with
// {"id", "state": "expired" or "lost", "error"}, for a batch of the tenant
// whose records expired after the retention or vanished (Redis lost data).
func (s *Server) batch(w http.ResponseWriter, r *http.Request, tenant string) (jobs.Batch, bool) {
	id := r.PathValue("id")
	b, err := s.cfg.Tracker.Get(r.Context(), id)
	if g := jobs.Gone(err); g != nil && g.Tenant == tenant {
		writeJSON(w, http.StatusGone, map[string]string{"id": id, "state": g.State, "error": g.Error()})
		return b, false
	}
	if errors.Is(err, jobs.ErrNoBatch) || (err == nil && b.Tenant != tenant) {
		writeError(w, http.StatusNotFound, "no such batch: "+id)
		return b, false
	}
	if err != nil {
		s.internal(w, "read batch", err)
		return b, false
	}
	return b, true
}

// BatchView is a batch as GET /v1/batches/{id} shows it.
type BatchView struct {
	jobs.Batch
	Counts jobs.Counts `json:"counts"`
	// State is listing, running, finalizing, finished or stopped.
	State string `json:"state"`
	// RatePerMin is items ended per minute since the batch was created.
	RatePerMin float64 `json:"rate_per_min"`
	// ETASeconds is the estimated time left; absent when unknown.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Manifest and Report are where manifest.jsonl and report.md are (or
	// will be, once State is finished) written.
	Manifest string `json:"manifest"`
	Report   string `json:"report"`
	// WebhookDelivery is the state of the completion webhook's delivery,
	// when the batch has a webhook.
	WebhookDelivery *jobs.WebhookState `json:"webhook_delivery,omitempty"`
}

func (s *Server) view(ctx context.Context, b jobs.Batch) (BatchView, error) {
	c, err := s.cfg.Tracker.Counts(ctx, b.ID)
	if err != nil {
		return BatchView{}, err
	}
	v := BatchView{Batch: b, Counts: c, Manifest: joinLoc(b.Out, b.ManifestPath()), Report: joinLoc(b.Out, b.ReportPath())}
	if b.Webhook != "" {
		st, ok, err := s.cfg.Tracker.WebhookState(ctx, b.ID)
		if err != nil {
			return BatchView{}, err
		}
		if !ok {
			st = jobs.WebhookState{Status: jobs.WebhookPending, Delivery: jobs.WebhookDeliveryID(b.ID, jobs.EventBatchCompleted)}
		}
		v.WebhookDelivery = &st
	}
	v.State = c.State()
	end := s.cfg.Now()
	if c.Finalized && !c.Finished.IsZero() {
		end = c.Finished
	}
	if el := end.Sub(b.Created); el > 0 && !b.Created.IsZero() {
		v.RatePerMin = float64(c.Ended()) / el.Minutes()
	}
	if v.State == "running" && v.RatePerMin > 0 {
		eta := float64(c.Total-c.Ended()) / v.RatePerMin * 60
		v.ETASeconds = &eta
	}
	return v, nil
}

func joinLoc(out, key string) string { return strings.TrimRight(out, "/") + "/" + key }

func (s *Server) list(w http.ResponseWriter, r *http.Request, tenant string) {
	limit, err := intParam(r, "limit", 50, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	ids, err := s.cfg.Tracker.ListTenant(ctx, tenant, limit)
	if err != nil {
		s.internal(w, "list batches", err)
		return
	}
	out := make([]BatchView, 0, len(ids))
	for _, id := range ids {
		b, err := s.cfg.Tracker.Get(ctx, id)
		if errors.Is(err, jobs.ErrNoBatch) || (err == nil && b.Tenant != tenant) {
			continue
		}
		if err != nil {
			s.internal(w, "read batch", err)
			return
		}
		v, err := s.view(ctx, b)
		if err != nil {
			s.internal(w, "read batch", err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"batches": out})
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request, tenant string) {
	b, ok := s.batch(w, r, tenant)
	if !ok {
		return
	}
	v, err := s.view(r.Context(), b)
	if err != nil {
		s.internal(w, "read batch", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) items(w http.ResponseWriter, r *http.Request, tenant string) {
	status := r.URL.Query().Get("status")
	switch status {
	case "", jobs.StatusDone, jobs.StatusFailed, jobs.StatusSkipped, jobs.StatusCancelled:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown status %q: use done, failed, skipped or cancelled", status))
		return
	}
	page, err := intParam(r, "page", 1, 1, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	per, err := intParam(r, "per_page", 100, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, ok := s.batch(w, r, tenant)
	if !ok {
		return
	}
	entries, err := s.cfg.Tracker.Entries(r.Context(), b.ID)
	if err != nil {
		s.internal(w, "read items", err)
		return
	}
	sel := entries[:0]
	for _, e := range entries {
		if status == "" || e.Status == status {
			sel = append(sel, e)
		}
	}
	from := min(len(sel), (page-1)*per)
	to := min(len(sel), from+per)
	writeJSON(w, http.StatusOK, map[string]any{"items": sel[from:to], "page": page, "per_page": per, "total": len(sel)})
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, tenant string) {
	b, ok := s.batch(w, r, tenant)
	if !ok {
		return
	}
	n, err := s.cfg.Cancel(r.Context(), b.ID, s.cfg.Now())
	if err != nil {
		s.internal(w, "cancel batch", err)
		return
	}
	v, err := s.view(r.Context(), b)
	if err != nil {
		s.internal(w, "read batch", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": b.ID, "removed": n, "batch": v})
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request, tenant string) {
	var req RetryRequest
	if code, err := decode(r, &req, true); err != nil {
		writeError(w, code, err.Error())
		return
	}
	b, ok := s.batch(w, r, tenant)
	if !ok {
		return
	}
	// Say "nothing to retry" as a 409, not as a server error.
	entries, err := s.cfg.Tracker.Entries(r.Context(), b.ID)
	if err != nil {
		s.internal(w, "read items", err)
		return
	}
	found := false
	for _, e := range entries {
		if (e.Status == jobs.StatusFailed || (req.Cancelled && e.Status == jobs.StatusCancelled)) &&
			(req.Reason == "" || strings.Contains(strings.ToLower(e.Error), strings.ToLower(req.Reason))) {
			found = true
			break
		}
	}
	if !found {
		writeError(w, http.StatusConflict, "nothing to retry: no failed items"+map[bool]string{true: " or cancelled items", false: ""}[req.Cancelled]+
			map[bool]string{true: fmt.Sprintf(" whose reason contains %q", req.Reason), false: ""}[req.Reason != ""])
		return
	}
	s.idempotent(w, r, tenant, "retry", req, func(ctx context.Context, id string) (SubmitResponse, error) {
		res, err := s.cfg.Ingester.Retry(ctx, b.ID, ingest.RetryOptions{Cancelled: req.Cancelled, Reason: req.Reason, BatchID: id})
		if err != nil {
			return SubmitResponse{}, err
		}
		return SubmitResponse{ID: res.BatchID, Total: res.Total, Enqueued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds, RetryOf: b.ID}, nil
	})
}
