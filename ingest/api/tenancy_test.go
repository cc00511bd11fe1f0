package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// tenantsConfig parses a tenants file for a test.
func tenantsConfig(t *testing.T, yaml string) *tenants.Config {
	t.Helper()
	c, err := tenants.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSubmitAndRetryOutsideTheTenantsLocationsAre403(t *testing.T) {
	var budgets *tenants.Budgets
	e := newEnv(t, func(c *Config) {
		budgets = &tenants.Budgets{File: tenants.Static(&tenants.Config{}), Ledger: tenants.NewLedger(c.Redis, "")}
		c.Tenants = budgets
	})
	contracts := filepath.Join(e.src, "contracts")
	budgets.File = tenants.Static(tenantsConfig(t, fmt.Sprintf("tenants:\n  acme: {sources: [%q], outputs: [%q]}\n  beta: {share: 2}\n", contracts, e.out)))
	if err := os.Symlink(e.src, filepath.Join(contracts, "up")); err != nil {
		t.Fatal(err)
	}
	body := func(src, out string) map[string]any {
		return map[string]any{"sources": []string{src}, "out": out, "task": "summarize"}
	}
	for _, c := range []struct {
		what, token, src, out, want string
	}{
		{"beta, no locations listed (deny by default)", tokenB, contracts, e.out, "none are configured"},
		{"acme, a source wider than its own", tokenA, e.src, e.out, "source"},
		{"acme, a link out of its folder", tokenA, filepath.Join(contracts, "up"), e.out, "source"},
		{"acme, an output outside its own", tokenA, contracts, filepath.Join(e.root, "elsewhere"), "out"},
	} {
		var r map[string]string
		if code := e.do("POST", "/v1/batches", c.token, body(c.src, c.out), nil, &r); code != http.StatusForbidden || !strings.Contains(r["error"], c.want) {
			t.Errorf("%s: %d %q, want 403 about %q", c.what, code, r["error"], c.want)
		}
	}
	if pending, _ := e.insp.ListPendingTasks("default"); len(pending) != 0 {
		t.Errorf("%d tasks queued by refused submits", len(pending))
	}
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body(contracts, filepath.Join(e.out, "run1")), nil, &r); code != http.StatusCreated {
		t.Fatalf("acme's own submit: %d, want 201", code)
	}
	if code := e.do("POST", "/v1/batches/"+r.ID+"/cancel", tokenA, nil, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	// The operator takes acme's output away: a retry is refused like a
	// submit.
	budgets.File = tenants.Static(tenantsConfig(t, fmt.Sprintf("tenants:\n  acme: {sources: [%q]}\n", contracts)))
	var rr map[string]string
	if code := e.do("POST", "/v1/batches/"+r.ID+"/retry", tokenA, RetryRequest{Cancelled: true}, nil, &rr); code != http.StatusForbidden || !strings.Contains(rr["error"], "out") {
		t.Errorf("retry into an output no longer acme's: %d %q, want 403", code, rr["error"])
	}
	// An explicit default gives beta (listed without locations) the
	// default's.
	budgets.File = tenants.Static(tenantsConfig(t, fmt.Sprintf("tenants:\n  beta: {share: 2}\ndefault: {sources: [%q], outputs: [%q]}\n", e.src, e.out)))
	if code := e.do("POST", "/v1/batches", tokenB, body(e.src, filepath.Join(e.out, "run2")), nil, nil); code != http.StatusCreated {
		t.Errorf("beta with an explicit default: %d, want 201", code)
	}
}

func TestTokensRefuseABadTenantName(t *testing.T) {
	_, err := ParseTokens(strings.NewReader("secret-tok a:b\n"), "file")
	if !errors.Is(err, jobs.ErrBadTenant) || strings.Contains(err.Error(), "secret-tok") {
		t.Errorf("token of tenant a:b: %v, want ErrBadTenant without the token", err)
	}
	if _, err := newAuthenticator(map[string]string{"tok": "a:b"}); !errors.Is(err, jobs.ErrBadTenant) {
		t.Errorf("Config.Tokens with tenant a:b: %v", err)
	}
}
