package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
)

// ErrNoTokens is returned by New when no bearer token is configured: the
// API never serves anonymously.
var ErrNoTokens = errors.New("api: no bearer tokens configured (one \"TOKEN TENANT\" per line)")

// ParseTokens reads bearer tokens bound to tenants: one "TOKEN TENANT" per
// line; blank lines and lines starting with # are ignored. A tenant name
// must pass jobs.ValidTenant. name says where
// they come from, for errors. Token values never appear in errors.
func ParseTokens(r io.Reader, name string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s line %d: want \"TOKEN TENANT\" (content not shown)", name, line)
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%s line %d: token listed twice (content not shown)", name, line)
		}
		if err := jobs.ValidTenant(f[1]); err != nil {
			return nil, fmt.Errorf("%s line %d: %w: the tenant (second field) must be 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit (content not shown)", name, line, jobs.ErrBadTenant)
		}
		out[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// authenticator maps bearer tokens to tenants, comparing SHA-256 digests in
// constant time against every token (no early exit, lengths leak nothing).
type authenticator struct {
	digests [][32]byte
	tenants []string
}

func newAuthenticator(tokens map[string]string) (*authenticator, error) {
	a := &authenticator{}
	for tok, tenant := range tokens {
		if tok == "" || tenant == "" {
			return nil, errors.New("api: empty token or tenant")
		}
		if err := jobs.ValidTenant(tenant); err != nil {
			return nil, fmt.Errorf("api: tokens: %w", err)
		}
		a.digests = append(a.digests, sha256.Sum256([]byte(tok)))
		a.tenants = append(a.tenants, tenant)
	}
	if len(a.digests) == 0 {
		return nil, ErrNoTokens
	}
	return a, nil
}

// tenant returns the tenant of the request's bearer token, or "".
func (a *authenticator) tenant(r *http.Request) string {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	idx := -1
	for i, want := range a.digests {
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			idx = i
		}
	}
	if idx < 0 {
		return ""
	}
	return a.tenants[idx]
}
