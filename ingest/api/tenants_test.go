package api

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/jobs/tenants"
)

func TestSubmitOverTheTenantsBudgetIs402WithTheNumbers(t *testing.T) {
	cfg, err := tenants.Parse([]byte("tenants: {acme: {budget: {daily: {tokens: 5}, monthly: {tokens: 1000000}}}}"))
	if err != nil {
		t.Fatal(err)
	}
	var budgets *tenants.Budgets
	e := newEnv(t, func(c *Config) {
		budgets = &tenants.Budgets{File: tenants.Static(cfg), Ledger: tenants.NewLedger(c.Redis, "")}
		c.Tenants = budgets
	})
	// The tenants file gives its tenants locations (none: deny by default).
	cfg.Default.Sources, cfg.Default.Outputs = []string{e.root}, []string{e.root}
	if err := budgets.Charge(context.Background(), "acme", tenants.Spend{Tokens: 2}); err != nil {
		t.Fatal(err)
	}
	var r BudgetRefusal
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), map[string]string{"Idempotency-Key": "k1"}, &r); code != http.StatusPaymentRequired {
		t.Fatalf("submit over budget: %d, want 402", code)
	}
	b := r.Budget
	if b.Tenant != "acme" || b.Period != "daily" || b.Unit != "tokens" || b.Remaining != 3 || b.Limit != 5 || b.Spent != 2 || b.Estimate <= 3 {
		t.Errorf("refusal numbers = %+v, want acme's daily tokens: 3 of 5 left, estimate over 3", b)
	}
	if !strings.Contains(r.Error, "remaining daily budget of 3 tokens") {
		t.Errorf("refusal message %q", r.Error)
	}
	if pending, _ := e.insp.ListPendingTasks("default"); len(pending) != 0 {
		t.Errorf("%d tasks queued for a refused batch", len(pending))
	}
	// The refused request frees its Idempotency-Key; tenant beta has no budget.
	if code := e.do("POST", "/v1/batches", tokenB, e.submitBody(), nil, nil); code != http.StatusCreated {
		t.Errorf("tenant without a budget: %d, want 201", code)
	}
	cfg2, _ := tenants.Parse([]byte("tenants: {acme: {budget: {daily: {tokens: 1000000}}}}"))
	cfg2.Default = cfg.Default
	budgets.File = tenants.Static(cfg2)
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), map[string]string{"Idempotency-Key": "k1"}, nil); code != http.StatusCreated {
		t.Errorf("after the budget was raised: %d, want 201", code)
	}
}

func TestOpenAPIBudgetRefusalMatchesType(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Properties map[string]yaml.Node `yaml:"properties"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	s, ok := doc.Components.Schemas["BudgetRefusal"]
	if !ok {
		t.Fatal("no BudgetRefusal schema")
	}
	for _, c := range []struct {
		props map[string]bool
		typ   reflect.Type
	}{
		{keys(s.Properties), reflect.TypeFor[BudgetRefusal]()},
		{keys(s.Properties["budget"].Properties), reflect.TypeFor[BudgetNumbers]()},
	} {
		if want := jsonFields(c.typ); !reflect.DeepEqual(c.props, want) {
			t.Errorf("%s: documented %v, type has %v", c.typ.Name(), c.props, want)
		}
	}
}

func keys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
