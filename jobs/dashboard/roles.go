package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
)

// Role is what a login may see and do.
type Role string

const (
	// RoleAdmin sees every batch and may change tasks in asynqmon (pause,
	// retry, delete) unless the dashboard is read-only.
	RoleAdmin Role = "admin"
	// RoleViewer sees every batch, asynqmon and /metrics, and changes
	// nothing: asynqmon is served read-only (no action buttons) and any
	// request but GET, HEAD or OPTIONS answers 403.
	RoleViewer Role = "viewer"
	// RoleTenant sees only its tenant's batches and their results; another
	// tenant's batch answers 404. asynqmon and /metrics, which span
	// tenants, answer 403; it changes nothing.
	RoleTenant Role = "tenant"
)

// User is one login of the users file (--dashboard-users): a name and a
// secret (the basic-auth password; the same secret is also accepted as a
// bearer token) with a role, and for RoleTenant its tenant.
type User struct {
	Name   string
	Role   Role
	Tenant string
	Secret string
}

// Session is who a request authenticated as, as the pages use it.
type Session struct {
	Name   string
	Role   Role
	Tenant string // set for RoleTenant only
}

// CanChange reports whether the session may change anything.
func (s Session) CanChange() bool { return s.Role == RoleAdmin }

// AllTenants reports whether the session sees every tenant's batches
// (and asynqmon, /metrics).
func (s Session) AllTenants() bool { return s.Role != RoleTenant }

// sees reports whether the session may see batch b.
func (s Session) sees(b jobs.Batch) bool { return s.AllTenants() || b.Tenant == s.Tenant }

type sessionKey struct{}

func withSession(ctx context.Context, s Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// sessionOf returns the request's session. A context without one (a
// handler called without the dashboard's authentication) sees nothing
// beyond a tenant that cannot exist.
func sessionOf(ctx context.Context) Session {
	if s, ok := ctx.Value(sessionKey{}).(Session); ok {
		return s
	}
	return Session{Role: RoleTenant, Tenant: "\x00"}
}

// ParseUsers reads a users file: one login per line, "NAME ROLE SECRET",
// where ROLE is admin, viewer or tenant:TENANT; blank lines and lines
// starting with # are ignored. Names are unique, and so are secrets (a
// secret is also a bearer token and must name one login). name says where
// the lines come from, for errors; secrets never appear in them.
func ParseUsers(r io.Reader, name string) ([]User, error) {
	var out []User
	names, secrets := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: want \"NAME ROLE SECRET\" with ROLE admin, viewer or tenant:TENANT (content not shown)", name, line)
		}
		u := User{Name: f[0], Secret: f[2]}
		switch role, tenant, _ := strings.Cut(f[1], ":"); Role(role) {
		case RoleAdmin, RoleViewer:
			if tenant != "" {
				return nil, fmt.Errorf("%s line %d: user %q: role %s takes no tenant", name, line, u.Name, role)
			}
			u.Role = Role(role)
		case RoleTenant:
			if err := jobs.ValidTenant(tenant); err != nil {
				return nil, fmt.Errorf("%s line %d: user %q: want tenant:TENANT with a valid tenant name: %w", name, line, u.Name, err)
			}
			u.Role, u.Tenant = RoleTenant, tenant
		default:
			return nil, fmt.Errorf("%s line %d: user %q: unknown role %q: want admin, viewer or tenant:TENANT", name, line, u.Name, f[1])
		}
		if names[u.Name] {
			return nil, fmt.Errorf("%s line %d: user %q listed twice", name, line, u.Name)
		}
		if secrets[u.Secret] {
			return nil, fmt.Errorf("%s line %d: user %q: the same secret is given to another user (content not shown)", name, line, u.Name)
		}
		names[u.Name], secrets[u.Secret] = true, true
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no user", name)
	}
	return out, nil
}

// ReadUsers reads a users file (ParseUsers).
func ReadUsers(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read users file: %w", err)
	}
	defer f.Close()
	return ParseUsers(f, path)
}

// roleGuard enforces the session's role on every route behind the
// credentials: writes by anyone but an admin answer 403, a tenant login
// gets 403 on asynqmon and /metrics, and asynqmon is served read-only to
// viewers.
func roleGuard(next, amonRO http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r.Context())
		write := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
		asynqmon := r.URL.Path == AsynqPath || strings.HasPrefix(r.URL.Path, AsynqPath+"/")
		switch {
		case !s.AllTenants() && (asynqmon || r.URL.Path == "/metrics"):
			forbid(w, "a tenant login sees its own batches only, not the queues or metrics of every tenant")
		case write && !s.CanChange():
			forbid(w, "the "+string(s.Role)+" role cannot change anything")
		case asynqmon && !s.CanChange() && amonRO != nil:
			amonRO.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func forbid(w http.ResponseWriter, why string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "403 forbidden: "+why, http.StatusForbidden)
}
