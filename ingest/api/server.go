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
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/eta"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
	"github.com/llamapipe/llamapipe/storage"
)

// OpenAPI is the OpenAPI 3 document describing the API.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBody is the largest request body accepted (413 above it).
const MaxBody = 1 << 20

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = jobs.IdempotencyTTL

// idempotencyLease is how long an Idempotency-Key stays reserved by a
// request still running (a server that died mid-request frees it then).
const idempotencyLease = jobs.IdempotencyReserveTTL

// Batches reads batch records: what the API needs of *jobs.Tracker.
type Batches interface {
	Get(ctx context.Context, id string) (jobs.Batch, error)
	ListTenant(ctx context.Context, tenant string, n int) ([]string, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	// EntriesPage, EachEntry and EntryCount read a batch's entries a page
	// at a time: no request loads a whole batch.
	EntriesPage(ctx context.Context, batch string, cursor uint64, count int) ([]jobs.Entry, uint64, error)
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
	EntryCount(ctx context.Context, batch string) (int, error)
	WebhookState(ctx context.Context, batch string) (jobs.WebhookState, bool, error)
}

var _ Batches = (*jobs.Tracker)(nil)

// Profile is what the API knows of a model profile (cmd/llamapipe builds it
// from worker/llm and worker/estimate; the API knows no model).
type Profile struct {
	// Name names it in messages (its preset name, else its provider).
	Name string
	// NoDocuments says why documents cannot be summarized with it (nil:
	// they can); such a profile takes only task caption.
	NoDocuments error
	// BatchAPI is true when its provider has a batch API (model_mode
	// batch needs it in the workers' profile).
	BatchAPI bool
	// Estimator estimates a submit's items under it, for the submit's
	// answer and its tenant's budget. Required.
	Estimator ingest.ItemEstimator
}

// Config configures the API server.
type Config struct {
	// Tracker reads batch records (a *jobs.Tracker). Required.
	Tracker Batches
	// Redis keeps the Idempotency-Key records. Required.
	Redis redis.UniversalClient
	// Ingester creates batches and retries (its Open, Queue and Tracker must
	// be set). Required.
	Ingester *ingest.Ingester
	// Cancel cancels a batch at now and returns how many queued items it
	// removed (ingest/cancel.Batch with the server's inspector and queue).
	// Required.
	Cancel func(ctx context.Context, batch string, now time.Time) (int, error)
	// Tokens maps bearer tokens to tenants. New refuses an empty map.
	Tokens map[string]string
	// Allow are the location prefixes (s3://bucket/prefix or absolute
	// folders) sources must lie under. Required.
	Allow []string
	// AllowOut are the prefixes outputs must lie under. Empty: Allow.
	AllowOut []string
	// Defaults fill in what a submit does not say: Provider, Model,
	// Prompts, MaxSize, MaxRetry, Job.MaxOutputTokens. Zero: ingest's.
	// Its MaxQueued is the most a submit may ask for (and what one that
	// asks for none gets); zero: no bound. Bounded batches need
	// Ingester.Feeds.
	Defaults ingest.Options
	// AllowWebhooks are the URL prefixes (http:// or https://) a submit's
	// completion webhook must start with. Empty: submits with a webhook
	// are refused.
	AllowWebhooks []string
	// Profiles resolves the model profile a submit names for its estimate
	// ("": the workers' profile, which also decides model_mode batch); its
	// error, saying why a name is unknown, is answered 400. Required.
	Profiles func(name string) (Profile, error)
	// PlanSample is how many items of a submit are estimated exactly; the
	// rest are extrapolated by size. Zero means ingest.DefaultPlanSample
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
	// Shutdown ends when the server shuts down. A submit's listing runs
	// apart from its HTTP request (a client that goes away does not stop
	// it) until it ends, ListingTimeout passes or Shutdown ends; a listing
	// stopped part-way ends its batch cancelled, its queued items removed.
	// Nil: context.Background() (listings are stopped only by
	// ListingTimeout).
	Shutdown context.Context
	// ListingTimeout bounds a submit's (or retry's) listing. Zero means
	// 6 hours.
	ListingTimeout time.Duration
	// EstimateWorkers is how many sampled objects the server's estimates
	// read at once, over all requests (a fixed pool: concurrent submits
	// wait for a slot). Zero means 4.
	EstimateWorkers int
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
	// estimates bounds the estimate work of all requests together.
	estimates *ingest.EstimatePool
	// rates holds the recent progress of the batches clients follow.
	rates eta.Window
}

// New builds the API server.
func New(cfg Config) (*Server, error) {
	if cfg.Tracker == nil || cfg.Redis == nil || cfg.Ingester == nil || cfg.Cancel == nil || cfg.Profiles == nil {
		return nil, errors.New("api: Tracker, Redis, Ingester, Cancel and Profiles are required")
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
		if err := webhook.ParsePrefix(h); err != nil {
			return nil, fmt.Errorf("api: allowed %w", err)
		}
	}
	cfg.KeyPrefix = cmp.Or(cfg.KeyPrefix, jobs.DefaultPrefix)
	cfg.IdempotencyWait = cmp.Or(cfg.IdempotencyWait, 30*time.Second)
	cfg.ListingTimeout = cmp.Or(cfg.ListingTimeout, 6*time.Hour)
	cfg.EstimateWorkers = cmp.Or(cfg.EstimateWorkers, 4)
	if cfg.Shutdown == nil {
		cfg.Shutdown = context.Background()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, auth: auth, allow: allow, allowOut: allowOut, estimates: ingest.NewEstimatePool(cfg.EstimateWorkers),
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
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// JSON and YAML only: nothing of ours is meant to be framed.
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
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

// badRequest is a validation failure answered with 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, a ...any) error { return &badRequest{msg: fmt.Sprintf(format, a...)} }

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

// listingContext is the context a batch's listing runs on: apart from the
// request's (a client that disconnects does not stop it), ended by the
// server's Shutdown or after ListingTimeout.
func (s *Server) listingContext(ctx context.Context) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ListingTimeout)
	stop := context.AfterFunc(s.cfg.Shutdown, cancel)
	return lctx, func() { stop(); cancel() }
}

// stopped removes the queued items of batch id when its listing stopped
// part-way (err is ingest.ErrStopped: ingest sealed and cancelled it).
func (s *Server) stopped(ctx context.Context, id string, err error) {
	if !errors.Is(err, ingest.ErrStopped) {
		return
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	n, cerr := s.cfg.Cancel(c, id, s.cfg.Now())
	if cerr != nil {
		s.log.Error("cancel a batch whose listing stopped", "batch_id", id, "err", cerr)
		return
	}
	s.log.Warn("listing stopped part-way: batch cancelled", "batch_id", id, "removed", n, "err", err)
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
