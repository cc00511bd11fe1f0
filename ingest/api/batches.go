package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/eta"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/jobs/webhook"
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
	// State is one of jobs.States.
	State string `json:"state"`
	// RatePerMin is items ended per minute over the last 10 minutes the
	// batch was followed (since it was created, on a first look).
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
	// ProvidersDown are the providers the batch's items may call (its
	// model, its fallback presets) that are down now, while it runs.
	ProvidersDown []outage.Down `json:"providers_down,omitempty"`
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
			st = jobs.WebhookState{Status: jobs.WebhookPending, Delivery: webhook.DeliveryID(b.ID, webhook.EventBatchCompleted)}
		}
		v.WebhookDelivery = &st
	}
	v.State = c.State()
	if !jobs.Ended(v.State) {
		if v.ProvidersDown, err = outage.NewReader(s.cfg.Redis).ProvidersDown(ctx, b); err != nil {
			return BatchView{}, err
		}
	}
	end := s.cfg.Now()
	if c.Finalized && !c.Finished.IsZero() {
		end = c.Finished
	}
	if el := end.Sub(b.Created); el > 0 && !b.Created.IsZero() {
		v.RatePerMin = float64(c.Ended()) / el.Minutes()
	}
	if r, ok := s.rates.Observe(b.ID, s.cfg.Now(), c.Ended()); ok && v.State == jobs.StateRunning {
		v.RatePerMin = r // over the last 10 minutes the batch was followed
	}
	if d, ok := eta.Left(c.Total-c.Ended(), v.RatePerMin); ok && v.State == jobs.StateRunning {
		sec := d.Seconds()
		v.ETASeconds = &sec
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
	q := r.URL.Query()
	status := q.Get("status")
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
	var cur itemsCursor
	if c := q.Get("cursor"); c != "" {
		if q.Has("page") {
			writeError(w, http.StatusBadRequest, "give either cursor or page, not both")
			return
		}
		if cur, err = parseItemsCursor(c); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	b, ok := s.batch(w, r, tenant)
	if !ok {
		return
	}
	ctx := r.Context()
	pg, err := s.itemsPage(ctx, b.ID, status, cur, (page-1)*per, per)
	if err != nil {
		s.internal(w, "read items", err)
		return
	}
	total, err := s.itemsTotal(ctx, b.ID, status)
	if err != nil {
		s.internal(w, "read items", err)
		return
	}
	resp := map[string]any{"items": pg.items, "page": page, "per_page": per, "total": total}
	if pg.next != nil {
		resp["next_cursor"] = pg.next.String()
	}
	writeJSON(w, http.StatusOK, resp)
}

// itemsCursor is where a page of items ends: the HSCAN cursor of the scan
// step it ended in, how many entries of that step it had read, and the
// step's COUNT (a step is read again the same way to skip them).
type itemsCursor struct {
	scan  uint64
	skip  int
	count int
}

func (c itemsCursor) String() string { return fmt.Sprintf("%d.%d.%d", c.scan, c.skip, c.count) }

func parseItemsCursor(s string) (itemsCursor, error) {
	var c itemsCursor
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("cursor %q: use the next_cursor of the previous page", s)
	}
	scan, err1 := strconv.ParseUint(parts[0], 10, 64)
	skip, err2 := strconv.Atoi(parts[1])
	count, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || skip < 0 || count < 1 || count > 1000 {
		return c, fmt.Errorf("cursor %q: use the next_cursor of the previous page", s)
	}
	return itemsCursor{scan: scan, skip: skip, count: count}, nil
}

// maxItemsScan bounds the entries one page request reads when a status
// filter matches few of them: the page is then shorter and next_cursor
// goes on.
const maxItemsScan = 10_000

type itemsPage struct {
	items []jobs.Entry
	// next is where the next page starts; nil after the last page.
	next *itemsCursor
}

// itemsPage reads entries matching status from cur, page by page through
// the batch's items hash, drops the first skip matches (page numbers) and
// returns up to per of them: O(per) memory whatever the batch's size. With
// a cursor (cur.count set) it stops after reading maxItemsScan entries.
func (s *Server) itemsPage(ctx context.Context, batch, status string, cur itemsCursor, skip, per int) (itemsPage, error) {
	cursorMode := cur.count > 0
	count := cmp.Or(cur.count, per)
	out := make([]jobs.Entry, 0, per)
	read := 0
	for {
		entries, next, err := s.cfg.Tracker.EntriesPage(ctx, batch, cur.scan, count)
		if err != nil {
			return itemsPage{}, err
		}
		for i := min(cur.skip, len(entries)); i < len(entries); i++ {
			read++
			e := entries[i]
			if status != "" && e.Status != status {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, e)
			if len(out) < per {
				continue
			}
			switch {
			case i+1 < len(entries):
				return itemsPage{out, &itemsCursor{scan: cur.scan, skip: i + 1, count: count}}, nil
			case next != 0:
				return itemsPage{out, &itemsCursor{scan: next, count: count}}, nil
			}
			return itemsPage{items: out}, nil
		}
		if next == 0 {
			return itemsPage{items: out}, nil
		}
		cur = itemsCursor{scan: next, count: count}
		if cursorMode && read >= maxItemsScan {
			return itemsPage{out, &cur}, nil
		}
		if err := ctx.Err(); err != nil {
			return itemsPage{}, err
		}
	}
}

// itemsTotal is how many entries match status, from the batch's counters.
func (s *Server) itemsTotal(ctx context.Context, batch, status string) (int, error) {
	if status == "" {
		return s.cfg.Tracker.EntryCount(ctx, batch)
	}
	c, err := s.cfg.Tracker.Counts(ctx, batch)
	if err != nil {
		return 0, err
	}
	return map[string]int{jobs.StatusDone: c.Done, jobs.StatusFailed: c.Failed, jobs.StatusSkipped: c.Skipped, jobs.StatusCancelled: c.Cancelled}[status], nil
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
	if err := s.checkTenant(tenant, b.Sources, b.Out); err != nil {
		s.refuseLocations(w, err)
		return
	}
	// Say "nothing to retry" as a 409, not as a server error (read page by
	// page, up to the first match).
	found, err := ingest.HasRetryable(r.Context(), s.cfg.Tracker, b.ID, ingest.RetryOptions{Cancelled: req.Cancelled, Reason: req.Reason})
	if err != nil {
		s.internal(w, "read items", err)
		return
	}
	if !found {
		writeError(w, http.StatusConflict, "nothing to retry: no failed items"+map[bool]string{true: " or cancelled items", false: ""}[req.Cancelled]+
			map[bool]string{true: fmt.Sprintf(" whose reason contains %q", req.Reason), false: ""}[req.Reason != ""])
		return
	}
	s.idempotent(w, r, tenant, "retry", req, func(ctx context.Context, id string) (SubmitResponse, error) {
		lctx, stop := s.listingContext(ctx)
		defer stop()
		res, err := s.cfg.Ingester.Retry(lctx, b.ID, ingest.RetryOptions{Cancelled: req.Cancelled, Reason: req.Reason, BatchID: id})
		if err != nil {
			s.stopped(ctx, id, err)
			return SubmitResponse{}, err
		}
		return SubmitResponse{ID: res.BatchID, Total: res.Total, Enqueued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds, RetryOf: b.ID}, nil
	})
}
