package api

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every answer of the API, refusals included, forbids framing and sniffing.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/v1/openapi.yaml", ""},
		{"GET", "/v1/batches", tokenA},
		{"GET", "/v1/batches", ""},
		{"GET", "/v1/batches/no-such", tokenA},
		{"POST", "/v1/batches", tokenA},
		{"GET", "/nothing-here", tokenA},
	} {
		req, err := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		h := res.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s (%d): CSP %q, X-Frame-Options %q, X-Content-Type-Options %q", c.method, c.path, res.StatusCode,
				h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
	}
}

// A submit creates no folder: a missing source is refused with 400 and
// stays missing; a missing output under an allowed prefix is accepted and
// left to the workers, who create it with the first result they write.
func TestSubmitCreatesNoFolder(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(e.root, "no-such-source", "deeper")
	m := e.submitBody()
	m["sources"] = []string{missing}
	var er struct{ Error string }
	code := e.do("POST", "/v1/batches", tokenA, m, nil, &er)
	if code != http.StatusBadRequest ||
		!strings.Contains(er.Error, "source "+missing) || !strings.Contains(er.Error, missing+" does not exist") {
		t.Errorf("missing source: %d %q, want 400 saying %s does not exist", code, er.Error, missing)
	}
	for _, p := range []string{missing, filepath.Dir(missing)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after the refused submit: %v, want it still missing", p, err)
		}
	}

	out := filepath.Join(e.root, "new-out", "x")
	m = e.submitBody()
	m["out"] = out
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, m, nil, &r); code != http.StatusCreated {
		t.Fatalf("missing output: %d, want 201", code)
	}
	if _, err := os.Stat(filepath.Join(e.root, "new-out")); !os.IsNotExist(err) {
		t.Errorf("the submit created its output folder: %v", err)
	}
	if r.Enqueued == 0 {
		t.Errorf("submit into a new output enqueued nothing: %+v", r)
	}
}
