package dashboard

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// AsynqPath is where asynqmon is served.
const AsynqPath = "/asynq"

// Auth holds the credentials the dashboard accepts. Either or both kinds
// may be set; a request needs one valid credential.
type Auth struct {
	// User and Password enable HTTP basic auth when both are non-empty.
	User     string
	Password string
	// Tokens are accepted bearer tokens ("Authorization: Bearer TOKEN");
	// several allow rotation. Empty strings are ignored.
	Tokens []string
	// User, Password and Tokens log in as an admin (a viewer when the
	// dashboard is read-only). Users are logins with their own role
	// (ReadUsers: the --dashboard-users file).
	Users []User
}

// Configured reports whether any credential is set.
func (a Auth) Configured() bool {
	if a.User != "" && a.Password != "" {
		return true
	}
	for _, t := range a.Tokens {
		if t != "" {
			return true
		}
	}
	for _, u := range a.Users {
		if u.Name != "" && u.Secret != "" {
			return true
		}
	}
	return false
}

// Batches reads batch records: what the dashboard needs of *jobs.Tracker.
type Batches interface {
	List(ctx context.Context, n int) ([]string, error)
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
	Progress(ctx context.Context, batch string) ([]jobs.Progress, error)
}

var _ Batches = (*jobs.Tracker)(nil)

// Config configures the dashboard. Tracker and RedisConnOpt are required.
type Config struct {
	// Tracker reads batch records (a *jobs.Tracker).
	Tracker Batches
	// RedisConnOpt is the asynq connection asynqmon uses.
	RedisConnOpt asynq.RedisConnOpt
	// ReadOnly restricts asynqmon to viewing (its API refuses anything but
	// GET). Default false: operators may pause queues, retry or delete tasks.
	ReadOnly bool
	// PrometheusURL is the Prometheus (http://host:9090) that scrapes the
	// queue metrics (asynq_*, this dashboard's /metrics); asynqmon draws its
	// queue charts from it. Empty: asynqmon's metrics view is off.
	PrometheusURL string
	// Auth is the accepted credentials. New refuses an empty Auth unless
	// Anonymous is set.
	Auth Auth
	// Anonymous serves every page without credentials. Default false. Meant
	// for a dashboard on a loopback address only (the CLI enforces that).
	Anonymous bool
	// AllowHosts are Host header values (a name, or name:port) a dashboard
	// without credentials answers besides loopback names and addresses with
	// its own port (e.g. the name a reverse proxy on this machine forwards).
	// Others get 421: a web page cannot reach the dashboard through DNS
	// rebinding. Not used when Auth is configured.
	AllowHosts []string
	// Metrics is served at /metrics, behind the credentials (cmd/llamapipe
	// gives it a Prometheus registry with asynq's queue collector and the
	// live-worker gauges of worker/metrics). Nil: no /metrics.
	Metrics http.Handler
	// Healthz and Readyz are served at /healthz and /readyz without
	// credentials (cmd/llamapipe gives it worker/metrics' health handlers,
	// /readyz pinging Redis). Nil: not served.
	Healthz, Readyz http.Handler
	// Logger receives the dashboard's logs. Nil discards them.
	Logger *slog.Logger
	// Batches is how many batches, newest first, the batch page lists.
	// Zero means 50.
	Batches int
	// Tenants give the batch page its tenant's spend today and this month
	// and what is left of its budget. Nil: the spend is read from
	// RedisConnOpt's Redis with days in UTC, and no budget is shown.
	Tenants *tenants.Budgets
	// Now is the clock for rates and ETAs. Nil means time.Now.
	Now func() time.Time
	// Open opens a storage location (storage/backends.Open): the results
	// view (/batches/{id}/results, /doc, /image; see results.go) reads
	// results and image sources through it. Nil: no results view.
	Open Opener
}

// Handler is the dashboard: an http.Handler holding Redis connections that
// Close releases.
type Handler struct {
	h       http.Handler
	closers []func() error
}

// ServeHTTP serves the dashboard.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.h.ServeHTTP(w, r) }

// Close releases the dashboard's Redis connections.
func (h *Handler) Close() error {
	var err error
	for _, c := range h.closers {
		err = errors.Join(err, c())
	}
	return err
}

// ErrNoCredentials is returned by New when no credential is configured and
// anonymous access was not asked for.
var ErrNoCredentials = errors.New("dashboard: no credentials configured (basic auth user and password, or a bearer token)")

// New builds the dashboard.
func New(cfg Config) (*Handler, error) {
	if cfg.Tracker == nil || cfg.RedisConnOpt == nil {
		return nil, errors.New("dashboard: Tracker and RedisConnOpt are required")
	}
	if !cfg.Auth.Configured() && !cfg.Anonymous {
		return nil, ErrNoCredentials
	}
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)).With("component", "dashboard")
	d := &Handler{}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	pages, err := newPages(cfg.Tracker, cmp.Or(cfg.Batches, 50), now, log)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	rdb, ok := cfg.RedisConnOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		_ = d.Close()
		return nil, fmt.Errorf("dashboard: unsupported Redis connection %T", cfg.RedisConnOpt)
	}
	d.closers = append(d.closers, rdb.Close)
	pages.down = outage.NewReader(rdb)
	pages.budgets = cfg.Tenants
	if pages.budgets == nil {
		pages.budgets = &tenants.Budgets{File: tenants.Static(nil), Ledger: tenants.NewLedger(rdb, "")}
	}
	amon := asynqmon.New(asynqmon.Options{RootPath: AsynqPath, RedisConnOpt: cfg.RedisConnOpt, ReadOnly: cfg.ReadOnly,
		PrometheusAddress: cfg.PrometheusURL})
	d.closers = append(d.closers, amon.Close)
	// Viewers and tenants get asynqmon read-only (no action buttons, its
	// API refuses writes): a second instance, unless the first one is.
	var amonRO http.Handler
	if !cfg.ReadOnly {
		ro := asynqmon.New(asynqmon.Options{RootPath: AsynqPath, RedisConnOpt: cfg.RedisConnOpt, ReadOnly: true,
			PrometheusAddress: cfg.PrometheusURL})
		d.closers = append(d.closers, ro.Close)
		amonRO = ro
	}
	legacy := RoleAdmin
	if cfg.ReadOnly {
		legacy = RoleViewer
	}

	private := http.NewServeMux()
	private.Handle(AsynqPath+"/", amon)
	private.Handle("GET "+AsynqPath, http.RedirectHandler(AsynqPath+"/", http.StatusMovedPermanently))
	if cfg.Metrics != nil {
		private.Handle("GET /metrics", cfg.Metrics)
	}
	private.Handle("GET /{$}", ownPage(http.HandlerFunc(pages.list)))
	private.Handle("GET /batches/{id}", ownPage(http.HandlerFunc(pages.detail)))
	if cfg.Open != nil {
		rs, err := newResults(pages, cfg.Open)
		if err != nil {
			_ = d.Close()
			return nil, err
		}
		pages.results = true
		private.Handle("GET /batches/{id}/results", ownPage(http.HandlerFunc(rs.list)))
		private.Handle("GET /batches/{id}/doc", ownPage(http.HandlerFunc(rs.doc)))
		private.Handle("GET /batches/{id}/image", ownPage(http.HandlerFunc(rs.image)))
	}

	root := http.NewServeMux()
	if cfg.Healthz != nil {
		root.Handle("GET /healthz", cfg.Healthz)
	}
	if cfg.Readyz != nil {
		root.Handle("GET /readyz", cfg.Readyz)
	}
	guarded := roleGuard(private, amonRO)
	if !cfg.Anonymous || cfg.Auth.Configured() {
		guarded = newAuthenticator(cfg.Auth, legacy, log).wrap(guarded)
	} else {
		guarded = asAnonymous(legacy, guarded)
	}
	// Browsers send basic credentials with cross-site requests too: refuse
	// cross-origin writes (asynqmon's pause, delete, retry).
	cop := http.NewCrossOriginProtection()
	if !cfg.Auth.Configured() {
		if err := trustAllowedHosts(cop, cfg.AllowHosts); err != nil {
			_ = d.Close()
			return nil, err
		}
	}
	root.Handle("/", cop.Handler(guarded))
	var h http.Handler = root
	if !cfg.Auth.Configured() {
		h = newHostGuard(cfg.AllowHosts).wrap(h)
	}
	d.h = frameHeaders(h)
	return d, nil
}

// ownPage adds the security headers of our server-rendered pages (asynqmon
// has its own inline scripts: it gets frameHeaders' policy only).
func ownPage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// authenticator checks basic credentials or bearer tokens in constant time
// (over SHA-256 digests, so lengths leak nothing either) and tells the
// session they open.
type authenticator struct {
	logins    []login
	challenge []string
	log       *slog.Logger
}

// login is one accepted credential: basic (user and password digests) or
// bearer (token digest).
type login struct {
	basic   bool
	user    [32]byte
	secret  [32]byte
	session Session
}

const realm = "llamapipe dashboard"

// newAuthenticator accepts a's single login and tokens with role legacy
// (admin, or viewer when read-only) and each of a.Users with its role
// (an admin is a viewer when read-only).
func newAuthenticator(a Auth, legacy Role, log *slog.Logger) *authenticator {
	au := &authenticator{log: log}
	basic, bearer := false, false
	if a.User != "" && a.Password != "" {
		basic = true
		au.logins = append(au.logins, login{basic: true, user: sha256.Sum256([]byte(a.User)), secret: sha256.Sum256([]byte(a.Password)),
			session: Session{Name: a.User, Role: legacy}})
	}
	for _, t := range a.Tokens {
		if t != "" {
			bearer = true
			au.logins = append(au.logins, login{secret: sha256.Sum256([]byte(t)), session: Session{Name: "token", Role: legacy}})
		}
	}
	for _, u := range a.Users {
		if u.Name == "" || u.Secret == "" {
			continue
		}
		s := Session{Name: u.Name, Role: u.Role, Tenant: u.Tenant}
		if s.Role == RoleAdmin && legacy == RoleViewer {
			s.Role = RoleViewer
		}
		basic, bearer = true, true
		au.logins = append(au.logins,
			login{basic: true, user: sha256.Sum256([]byte(u.Name)), secret: sha256.Sum256([]byte(u.Secret)), session: s},
			login{secret: sha256.Sum256([]byte(u.Secret)), session: s})
	}
	if basic {
		au.challenge = append(au.challenge, `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	if bearer {
		au.challenge = append(au.challenge, `Bearer realm="`+realm+`"`)
	}
	return au
}

// session returns the session r's credentials open, comparing against
// every login without an early exit.
func (a *authenticator) session(r *http.Request) (Session, bool) {
	var user, secret [32]byte
	basic := false
	if u, p, ok := r.BasicAuth(); ok {
		basic, user, secret = true, sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	} else {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return Session{}, false
		}
		secret = sha256.Sum256([]byte(strings.TrimSpace(token)))
	}
	var got Session
	found := false
	for _, l := range a.logins { // no early exit: every login is compared
		if l.basic != basic {
			continue
		}
		m := subtle.ConstantTimeCompare(secret[:], l.secret[:])
		if basic {
			m &= subtle.ConstantTimeCompare(user[:], l.user[:])
		}
		if m == 1 && !found {
			got, found = l.session, true
		}
	}
	return got, found
}

func (a *authenticator) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, ok := a.session(r); ok {
			h.ServeHTTP(w, r.WithContext(withSession(r.Context(), s)))
			return
		}
		if r.Header.Get("Authorization") != "" {
			a.log.Warn("dashboard: rejected credentials", "remote", r.RemoteAddr, "path", r.URL.Path)
		}
		for _, c := range a.challenge {
			w.Header().Add("WWW-Authenticate", c)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "401 unauthorized: basic auth or a bearer token is required", http.StatusUnauthorized)
	})
}

// asAnonymous gives every request the session of an anonymous dashboard.
func asAnonymous(role Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(withSession(r.Context(), Session{Name: "anonymous", Role: role})))
	})
}
