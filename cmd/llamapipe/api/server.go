package api

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/planner"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// OpenAPI is the OpenAPI 3 document describing the API.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBody is the largest request body accepted (413 above it).
const MaxBody = 1 << 20

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// idempotencyLease is how long an Idempotency-Key stays reserved by a
// request still running (a server that died mid-request frees it then).
const idempotencyLease = time.Hour

// Config configures the API server.
type Config struct {
	// Tracker reads and writes batch records. Required.
	Tracker *jobs.Tracker
	// Redis keeps the Idempotency-Key records. Required.
	Redis redis.UniversalClient
	// Ingester creates batches and retries (its Open, Queue and Tracker must
	// be set). Required.
	Ingester *ingest.Ingester
	// Inspector and Queue are used to cancel batches. Required.
	Inspector *asynq.Inspector
	Queue     jobs.Enqueuer
	// Tokens maps bearer tokens to tenants. New refuses an empty map.
	Tokens map[string]string
	// Allow are the location prefixes (s3://bucket/prefix or absolute
	// folders) sources must lie under. Required.
	Allow []string
	// AllowOut are the prefixes outputs must lie under. Empty: Allow.
	AllowOut []string
	// Defaults fill in what a submit does not say: Provider, Model,
	// Prompts, MaxSize, MaxRetry, Job.MaxOutputTokens. Zero: ingest's.
	Defaults ingest.Options
	// AllowWebhooks are the URL prefixes (http:// or https://) a submit's
	// completion webhook must start with. Empty: submits with a webhook
	// are refused.
	AllowWebhooks []string
	// Profile is the model profile submits are estimated with when they
	// name none (the workers' profile). Zero: the offline provider's (no
	// prices).
	Profile llm.Profile
	// Profiles are the profiles a submit may name for its estimate, by
	// name. Nil: llm.Builtins().
	Profiles map[string]llm.Profile
	// PlanSample is how many items of a submit are estimated exactly; the
	// rest are extrapolated by size. Zero means planner.DefaultSample
	// (500); negative: every item.
	PlanSample int
	// Tenants are the tenants' budgets: a submit whose plan estimate is over
	// what is left of its tenant's daily or monthly budget is refused with
	// 402 Payment Required and the numbers (BudgetRefusal). Nil: no
	// budgets.
	Tenants *tenants.Budgets
	// KeyPrefix namespaces the API's Redis keys. Empty means "llamapipe".
	KeyPrefix string
	// IdempotencyWait is how long a duplicate submit waits for the first
	// one to finish before it answers 409. Zero means 30s.
	IdempotencyWait time.Duration
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Server is the API: an http.Handler.
type Server struct {
	cfg      Config
	auth     *authenticator
	allow    []storage.Location
	allowOut []storage.Location
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []string
}

// New builds the API server.
func New(cfg Config) (*Server, error) {
	if cfg.Tracker == nil || cfg.Redis == nil || cfg.Ingester == nil || cfg.Inspector == nil || cfg.Queue == nil {
		return nil, errors.New("api: Tracker, Redis, Ingester, Inspector and Queue are required")
	}
	auth, err := newAuthenticator(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	allow, err := parsePrefixes("allowed source", cfg.Allow)
	if err != nil {
		return nil, err
	}
	allowOut := allow
	if len(cfg.AllowOut) > 0 {
		if allowOut, err = parsePrefixes("allowed output", cfg.AllowOut); err != nil {
			return nil, err
		}
	}
	for _, h := range cfg.AllowWebhooks {
		u, err := url.Parse(h)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("api: allowed webhook prefix %q: give an absolute http:// or https:// URL without credentials", h)
		}
	}
	if cfg.Profile.Provider == "" {
		cfg.Profile = llm.Profile{Provider: llm.ProviderOffline, TextOnly: true}
	}
	if cfg.Profiles == nil {
		cfg.Profiles = llm.Builtins()
	}
	cfg.KeyPrefix = cmp.Or(cfg.KeyPrefix, "llamapipe")
	cfg.IdempotencyWait = cmp.Or(cfg.IdempotencyWait, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, auth: auth, allow: allow, allowOut: allowOut,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)).With("component", "api"), mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	s.routes = append(s.routes, "GET /v1/openapi.yaml")
	s.handle("POST /v1/batches", s.submit)
	s.handle("GET /v1/batches", s.list)
	s.handle("GET /v1/batches/{id}", s.detail)
	s.handle("GET /v1/batches/{id}/items", s.items)
	s.handle("POST /v1/batches/{id}/cancel", s.cancel)
	s.handle("POST /v1/batches/{id}/retry", s.retry)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.auth.tenant(r) == "" {
			s.unauthorized(w)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: see /v1/openapi.yaml")
	})
	return s, nil
}

// Routes lists the served routes as "METHOD /path" patterns.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

type tenantHandler func(w http.ResponseWriter, r *http.Request, tenant string)

// handle registers an authenticated route.
func (s *Server) handle(pattern string, h tenantHandler) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		tenant := s.auth.tenant(r)
		if tenant == "" {
			if r.Header.Get("Authorization") != "" {
				s.log.Warn("rejected bearer token", "remote", r.RemoteAddr, "path", r.URL.Path)
			}
			s.unauthorized(w)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h(w, r, tenant)
	})
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="llamapipe api"`)
	writeError(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer TOKEN)")
}

// SubmitRequest is the body of POST /v1/batches.
type SubmitRequest struct {
	Sources  []string `json:"sources"`
	Out      string   `json:"out"`
	Task     string   `json:"task,omitempty"`
	Queue    string   `json:"queue,omitempty"`
	Language string   `json:"language,omitempty"`
	Include  []string `json:"include,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	Force    bool     `json:"force,omitempty"`
	// Webhook is told when the batch completes (see the README).
	Webhook string `json:"webhook,omitempty"`
	// Profile names the model profile the estimate is priced with.
	// Empty: the server's.
	Profile string `json:"profile,omitempty"`
	// ModelMode is online (default), batch (the provider's batch API) or
	// auto (batch on the nightly queue).
	ModelMode string `json:"model_mode,omitempty"`
}

// SubmitResponse answers a submit or a retry.
type SubmitResponse struct {
	ID       string         `json:"id"`
	Total    int            `json:"total"`
	Enqueued int            `json:"enqueued"`
	Skipped  int            `json:"skipped"`
	Kinds    map[string]int `json:"kinds,omitempty"`
	RetryOf  string         `json:"retry_of,omitempty"`
	// Plan is the submit's estimate (absent for retries).
	Plan *planner.Plan `json:"plan,omitempty"`
}

// RetryRequest is the body of POST /v1/batches/{id}/retry (optional).
type RetryRequest struct {
	Reason    string `json:"reason,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
}

var languageRE = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// badRequest is a validation failure answered with 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, a ...any) error { return &badRequest{msg: fmt.Sprintf(format, a...)} }

func (s *Server) validate(req *SubmitRequest) (llm.Profile, error) {
	prof := s.cfg.Profile
	if req.Profile != "" {
		p, err := llm.ResolveProfile(s.cfg.Profiles, req.Profile, "", "", "")
		if err != nil {
			return prof, bad("profile: %v", err)
		}
		prof = p
	}
	if err := s.validateRequest(req, prof); err != nil {
		return prof, err
	}
	return prof, nil
}

func (s *Server) validateRequest(req *SubmitRequest, prof llm.Profile) error {
	req.Task = cmp.Or(req.Task, jobs.TaskAuto)
	req.Queue = cmp.Or(req.Queue, jobs.QueueDefault)
	req.Language = cmp.Or(req.Language, "en")
	switch req.Task {
	case jobs.TaskAuto, jobs.TaskSummarize, jobs.TaskCaption:
	default:
		return bad("unknown task %q: use auto, summarize or caption", req.Task)
	}
	if !jobs.ValidQueue(req.Queue) {
		return bad("unknown queue %q: use critical, default or nightly", req.Queue)
	}
	if req.Task != jobs.TaskCaption {
		if err := llm.CheckRequestAllowed(prof, false); err != nil {
			return bad("profile %s: %v: documents cannot be summarized with it; use task caption", cmp.Or(req.Profile, prof.Preset, prof.Provider), err)
		}
	}
	if req.Webhook != "" {
		if err := s.checkWebhook(req.Webhook); err != nil {
			return err
		}
	}
	if !jobs.ValidModelMode(req.ModelMode) {
		return bad("unknown model_mode %q: use online, batch or auto", req.ModelMode)
	}
	if req.ModelMode == jobs.ModelBatch && s.cfg.Profile.BatchAPI == "" {
		return bad("model_mode batch: the workers' model (%s) has no batch API; use online or auto", cmp.Or(s.cfg.Profile.Preset, s.cfg.Profile.Provider))
	}
	if !languageRE.MatchString(req.Language) {
		return bad("language %q: use a language tag such as en, de or pt-BR", req.Language)
	}
	if len(req.Sources) == 0 {
		return bad("no sources: give at least one location in \"sources\"")
	}
	if req.Out == "" {
		return bad("no output location: set \"out\"")
	}
	out, err := parseAbs(req.Out)
	if err != nil {
		return bad("out: %v", err)
	}
	if !allowed(out, s.allowOut) {
		return bad("out %s is not under an allowed output location", out)
	}
	for _, g := range append(append([]string{}, req.Include...), req.Exclude...) {
		if !doublestar.ValidatePattern(g) {
			return bad("bad glob %q in include/exclude", g)
		}
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

// decode reads a JSON body strictly: unknown fields, trailing data and
// bodies over MaxBody are refused. An empty body is allowed when
// emptyOK.
func decode(r *http.Request, v any, emptyOK bool) (int, error) {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF) && emptyOK:
		return 0, nil
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("empty request body: send a JSON object")
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", mbe.Limit)
		}
		return http.StatusBadRequest, errors.New("bad JSON body: data after the object")
	}
	return 0, nil
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
	s.idempotent(w, r, tenant, "submit", req, func(ctx context.Context, id string) (SubmitResponse, error) {
		d := s.cfg.Defaults
		o := ingest.Options{
			Sources: req.Sources, Out: req.Out, Task: req.Task, Queue: req.Queue, Include: req.Include, Exclude: req.Exclude,
			Force: req.Force, Tenant: tenant, BatchID: id, Provider: d.Provider, Model: d.Model, Prompts: d.Prompts,
			MaxSize: d.MaxSize, MaxRetry: d.MaxRetry, Job: d.Job, Webhook: req.Webhook,
		}
		o.Job.Language = req.Language
		o.Job.ModelMode = req.ModelMode
		// Estimated first: once queued, items the workers finish would
		// count as unchanged.
		plan, err := planner.Estimate(ctx, s.cfg.Ingester, o, prof, planner.Options{Sample: s.cfg.PlanSample})
		if err != nil {
			return SubmitResponse{}, err
		}
		if s.cfg.Tenants != nil {
			est := tenants.Spend{Cost: plan.All.Cost, Tokens: plan.All.InputTokens + plan.All.OutputTokens}
			if err := s.cfg.Tenants.CheckEstimate(ctx, tenant, est, plan.Currency); err != nil {
				return SubmitResponse{}, err
			}
		}
		res, err := s.cfg.Ingester.Run(ctx, o)
		if err != nil {
			return SubmitResponse{}, err
		}
		return SubmitResponse{ID: res.BatchID, Total: res.Total, Enqueued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds, Plan: &plan}, nil
	})
}

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
// the key. Without the header, run is just called.
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
	rkey := s.cfg.KeyPrefix + ":api:idempotency:" + tenant + ":" + key
	rec := idemRecord{Request: canon, ID: newID}
	b, _ := json.Marshal(rec)
	first, err := s.cfg.Redis.SetNX(ctx, rkey, b, idempotencyLease).Result()
	if err != nil {
		s.internal(w, "idempotency key", err)
		return
	}
	if first {
		s.answer(ctx, w, run, newID, http.StatusCreated, func(resp *SubmitResponse, err error) {
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
		case errors.Is(err, storage.ErrNotExist):
			writeError(w, http.StatusBadRequest, "a location does not exist: "+err.Error())
		default:
			s.internal(w, "create batch", err)
		}
		return
	}
	writeJSON(w, code, resp)
}

// batch returns the tenant's batch, or answers 404.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, tenant string) (jobs.Batch, bool) {
	id := r.PathValue("id")
	b, err := s.cfg.Tracker.Get(r.Context(), id)
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
	n, err := jobs.CancelBatch(r.Context(), s.cfg.Tracker, s.cfg.Inspector, s.cfg.Queue, b.ID, s.cfg.Now())
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

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, what+": internal error (see the server log)")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// checkWebhook accepts an absolute http(s) URL without credentials that
// starts with an allowed prefix (at a path boundary).
func (s *Server) checkWebhook(raw string) error {
	if len(s.cfg.AllowWebhooks) == 0 {
		return bad("webhooks are not enabled on this server (--webhook-allow)")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("webhook: give an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return bad("webhook: the URL must not carry credentials (the workers sign each call instead)")
	}
	for _, p := range s.cfg.AllowWebhooks {
		if webhookUnder(raw, p) {
			return nil
		}
	}
	return bad("webhook %s is not under an allowed webhook prefix", u.Redacted())
}

// webhookUnder reports whether raw starts with prefix p, ending at a path,
// query or fragment boundary ("https://a.example" does not admit
// "https://a.example.evil").
func webhookUnder(raw, p string) bool {
	if !strings.HasPrefix(raw, p) {
		return false
	}
	return len(raw) == len(p) || strings.HasSuffix(p, "/") || strings.ContainsRune("/?#", rune(raw[len(p)]))
}
