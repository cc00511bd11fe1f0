package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

// SubmitResponse answers a submit or a retry.
type SubmitResponse struct {
	ID       string         `json:"id"`
	Total    int            `json:"total"`
	Enqueued int            `json:"enqueued"`
	Skipped  int            `json:"skipped"`
	Kinds    map[string]int `json:"kinds,omitempty"`
	RetryOf  string         `json:"retry_of,omitempty"`
	// Plan is the submit's estimate (absent for retries).
	Plan *plan.Plan `json:"plan,omitempty"`
}

// RetryRequest is the body of POST /v1/batches/{id}/retry (optional).
type RetryRequest struct {
	Reason    string `json:"reason,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

// validate checks a submit and fills in its defaults; it returns the
// profile its estimate is priced with.
func (s *Server) validate(req *SubmitRequest) (Profile, error) {
	workers, err := s.cfg.Profiles("")
	if err != nil {
		return Profile{}, err
	}
	prof := workers
	if req.Profile != "" {
		p, err := s.cfg.Profiles(req.Profile)
		if err != nil {
			return prof, bad("profile: %v", err)
		}
		prof = p
	}
	for i, f := range req.Fallback {
		if _, err := s.cfg.Profiles(f); err != nil || slices.Contains(req.Fallback[:i], f) {
			return prof, bad("fallback %q: give distinct known presets", f)
		}
	}
	if err := s.validateRequest(req, prof, workers); err != nil {
		return prof, err
	}
	return prof, nil
}

func (s *Server) validateRequest(req *SubmitRequest, prof, workers Profile) error {
	req.Task = cmp.Or(req.Task, jobs.TaskAuto)
	req.Queue = cmp.Or(req.Queue, jobs.QueueDefault)
	req.Language = cmp.Or(req.Language, "en")
	if err := speccheck.Validate(req.Spec); err != nil {
		return bad("%v", err)
	}
	if req.Task == jobs.TaskSummarize {
		if err := prof.NoDocuments; err != nil {
			return bad("profile %s: %v: documents cannot be summarized with it; use task caption", cmp.Or(req.Profile, prof.Name), err)
		}
	}
	if req.Webhook != "" {
		if err := s.checkWebhook(req.Webhook); err != nil {
			return err
		}
	}
	if req.ModelMode == jobs.ModelBatch && !workers.BatchAPI {
		return bad("model_mode batch: the workers' model (%s) has no batch API; use online or auto", workers.Name)
	}
	out, err := parseAbs(req.Out)
	if err != nil {
		return bad("out: %v", err)
	}
	if !allowed(out, s.allowOut) {
		return bad("out %s is not under an allowed output location", out)
	}
	for _, src := range req.Sources {
		l, err := parseAbs(src)
		if err != nil {
			return bad("source: %v", err)
		}
		if !allowed(l, s.allow) {
			return bad("source %s is not under an allowed source location", l)
		}
		if overlap(l, out) || overlap(resolve(l), resolve(out)) {
			return bad("out %s overlaps the source %s: choose an output location outside every source (and no source inside it)", out, l)
		}
	}
	return nil
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, tenant string) {
	var req SubmitRequest
	if code, err := decode(r, &req, false); err != nil {
		writeError(w, code, err.Error())
		return
	}
	prof, err := s.validate(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.checkTenant(tenant, req.Sources, req.Out); err != nil {
		s.refuseLocations(w, err)
		return
	}
	s.idempotent(w, r, tenant, "submit", req, func(ctx context.Context, id string) (SubmitResponse, error) {
		// The client says what to make; the server with what.
		d := s.cfg.Defaults
		spec := req.Spec
		spec.Tenant, spec.Provider, spec.Model, spec.MaxSize, spec.MaxRetry = tenant, d.Provider, d.Model, d.MaxSize, d.MaxRetry
		spec.MaxOutputTokens, spec.Products = d.MaxOutputTokens, d.Products
		spec.MaxQueued = maxQueued(req.MaxQueued, d.MaxQueued)
		o := ingest.Options{Spec: spec, BatchID: id, Prompts: d.Prompts}
		if prof.NoDocuments != nil {
			// Task auto: documents are skipped with the reason (the plan
			// in the answer and the manifest say so); images run.
			o.NoDocuments = prof.NoDocuments.Error()
			if err := s.cfg.Ingester.CheckDocuments(ctx, o); errors.Is(err, ingest.ErrNoDocuments) {
				return SubmitResponse{}, bad("profile %s: %v", cmp.Or(req.Profile, prof.Name), err)
			} else if err != nil {
				return SubmitResponse{}, err
			}
		}
		// Estimated first: once queued, items the workers finish would
		// count as unchanged.
		plan, err := s.cfg.Ingester.Plan(ctx, o, prof.Estimator, ingest.PlanOptions{Sample: s.cfg.PlanSample, Pool: s.estimates})
		if err != nil {
			return SubmitResponse{}, err
		}
		if s.cfg.Tenants != nil {
			est := tenants.Spend{Cost: plan.All.Cost, Tokens: plan.All.InputTokens + plan.All.OutputTokens}
			if err := s.cfg.Tenants.CheckEstimate(ctx, tenant, est, plan.Currency); errors.Is(err, tenants.ErrCurrency) {
				return SubmitResponse{}, bad("%v", err)
			} else if err != nil {
				return SubmitResponse{}, err
			}
		}
		// Once the batch is created it is listed to the end whatever
		// happens to this request (or ends cancelled).
		lctx, stop := s.listingContext(ctx)
		defer stop()
		res, err := s.cfg.Ingester.Run(lctx, o)
		if err != nil {
			s.stopped(ctx, id, err)
			return SubmitResponse{}, err
		}
		return SubmitResponse{ID: res.BatchID, Total: res.Total, Enqueued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds, Plan: &plan}, nil
	})
}

// BudgetRefusal is the 402 answer to a submit over its tenant's budget.
type BudgetRefusal struct {
	Error  string        `json:"error"`
	Budget BudgetNumbers `json:"budget"`
}

// BudgetNumbers are the numbers of a budget refusal.
type BudgetNumbers struct {
	Tenant string `json:"tenant"`
	// Period is daily or monthly; Unit is cost (money in Currency) or
	// tokens (input plus output).
	Period string `json:"period"`
	Unit   string `json:"unit"`
	// Estimate is the batch's estimate; Remaining what is left of the
	// budget, Limit the budget and Spent what was spent in the period.
	Estimate  float64 `json:"estimate"`
	Remaining float64 `json:"remaining"`
	Limit     float64 `json:"limit"`
	Spent     float64 `json:"spent"`
	Currency  string  `json:"currency,omitempty"`
	// Renews is when the period ends.
	Renews time.Time `json:"renews"`
}

func newBudgetRefusal(be *tenants.BudgetError) BudgetRefusal {
	return BudgetRefusal{Error: be.Error(), Budget: BudgetNumbers{Tenant: be.Tenant, Period: be.Period, Unit: be.Unit,
		Estimate: be.Estimate, Remaining: be.Remaining, Limit: be.Limit, Spent: be.Spent, Currency: be.Currency, Renews: be.Until.UTC()}}
}

// checkWebhook accepts a URL under an allowed prefix (webhook.Allowed
// says how they compare).
func (s *Server) checkWebhook(raw string) error {
	if len(s.cfg.AllowWebhooks) == 0 {
		return bad("webhooks are not enabled on this server (--webhook-allow)")
	}
	if err := webhook.Allowed(raw, s.cfg.AllowWebhooks); err != nil {
		return bad("%v", err)
	}
	return nil
}

// maxQueued is a submit's bound of queued items: the client's when it asks
// for a smaller one than the server's (bound), else the server's; zero
// (no bound) only when the server has none.
func maxQueued(asked, bound int) int {
	if bound > 0 && (asked == 0 || asked > bound) {
		return bound
	}
	return asked
}
