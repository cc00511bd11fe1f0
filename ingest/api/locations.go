package api

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/llamapipe/llamapipe/storage"
)

// parseAbs parses a location the API accepts: s3://bucket/prefix,
// file:///abs/path or an absolute local path (a relative path would be
// relative to the server's working folder, which means nothing to a caller).
func parseAbs(s string) (storage.Location, error) {
	if !strings.HasPrefix(s, "s3://") && !strings.HasPrefix(s, "file://") && !strings.HasPrefix(s, "/") {
		return storage.Location{}, fmt.Errorf("%q is not an s3:// URL, a file:// URL or an absolute path", s)
	}
	return storage.ParseLocation(s)
}

// parsePrefixes parses allowed location prefixes.
func parsePrefixes(what string, ss []string) ([]storage.Location, error) {
	var out []storage.Location
	for _, s := range ss {
		l, err := parseAbs(s)
		if err != nil {
			return nil, fmt.Errorf("api: %s: %w", what, err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("api: no %s prefix configured", what)
	}
	return out, nil
}

// within reports whether l lies at or under p, on path boundaries
// (s3://b/in does not contain s3://b/inbox).
func within(l, p storage.Location) bool {
	if l.Scheme != p.Scheme || l.Bucket != p.Bucket {
		return false
	}
	if l.Scheme == "file" && p.Prefix == "/" {
		return true
	}
	return p.Prefix == "" || l.Prefix == p.Prefix || strings.HasPrefix(l.Prefix, p.Prefix+"/")
}

// resolve follows symbolic links in a local location, so a
// link under an allowed folder cannot point a batch elsewhere. Other
// locations are returned as they are.
func resolve(l storage.Location) storage.Location {
	if l.Scheme != "file" {
		return l
	}
	// Resolve the longest part that exists (an output folder often does
	// not exist yet, but a parent of it may be a link).
	rest := ""
	for dir := l.Prefix; ; {
		if p, err := filepath.EvalSymlinks(dir); err == nil {
			l.Prefix = filepath.Join(p, rest)
			return l
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return l
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// allowed reports whether l lies under one of ps, both as named and with
// symbolic links resolved.
func allowed(l storage.Location, ps []storage.Location) bool {
	if !withinAny(l, ps) {
		return false
	}
	r := resolve(l)
	for _, p := range ps {
		if within(r, resolve(p)) {
			return true
		}
	}
	return false
}

func withinAny(l storage.Location, ps []storage.Location) bool {
	for _, p := range ps {
		if within(l, p) {
			return true
		}
	}
	return false
}

// overlap reports whether one of a and b lies inside the other.
func overlap(a, b storage.Location) bool { return within(a, b) || within(b, a) }

// forbidden is a request refused for its tenant's locations (403).
type forbidden struct{ msg string }

func (e *forbidden) Error() string { return e.msg }

// checkTenant refuses (with a *forbidden) sources or an output outside the
// tenant's own locations in the tenants file (Config.Tenants; see
// tenants.Config.Locations): a tenant that lists none gets the file's
// default ones, and with none there, nothing. Links are resolved as for
// the server-wide prefixes, so a link under the tenant's folder pointing
// into another tenant's is refused. Without a tenants file only the
// server-wide --allow and --allow-out prefixes apply. Submits and retries
// both pass here.
func (s *Server) checkTenant(tenant string, sources []string, out string) error {
	if s.cfg.Tenants == nil {
		return nil
	}
	locs, ok := s.cfg.Tenants.Config().Locations(tenant)
	if !ok {
		return nil
	}
	srcPs, err := tenantPrefixes(locs.Sources)
	if err != nil {
		return err
	}
	outPs, err := tenantPrefixes(locs.Outputs)
	if err != nil {
		return err
	}
	list := func(ss []string) string {
		if len(ss) == 0 {
			return "none are configured for it in the tenants file"
		}
		return "its locations are " + strings.Join(ss, ", ")
	}
	for _, src := range sources {
		l, err := parseAbs(src)
		if err != nil || !allowed(l, srcPs) {
			return &forbidden{msg: fmt.Sprintf("source %s is not under one of tenant %s's source locations (%s)", src, tenant, list(locs.Sources))}
		}
	}
	if l, err := parseAbs(out); err != nil || !allowed(l, outPs) {
		return &forbidden{msg: fmt.Sprintf("out %s is not under one of tenant %s's output locations (%s)", out, tenant, list(locs.Outputs))}
	}
	return nil
}

// tenantPrefixes parses a tenant's locations (the tenants file checked
// their form already).
func tenantPrefixes(ss []string) ([]storage.Location, error) {
	out := make([]storage.Location, 0, len(ss))
	for _, s := range ss {
		l, err := parseAbs(s)
		if err != nil {
			return nil, fmt.Errorf("api: tenants file location: %w", err)
		}
		out = append(out, l)
	}
	return out, nil
}

// refuseLocations answers a checkTenant error: 403 for a location outside
// the tenant's, 500 for a tenants file the API cannot read.
func (s *Server) refuseLocations(w http.ResponseWriter, err error) {
	var fb *forbidden
	if errors.As(err, &fb) {
		writeError(w, http.StatusForbidden, fb.msg)
		return
	}
	s.internal(w, "tenant locations", err)
}
