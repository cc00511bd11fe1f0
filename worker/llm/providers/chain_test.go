package providers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// OpenChain takes the policy from the primary's profile (defaults where
// it sets none), gates each fallback when there are tenants, and refuses a
// fallback priced in another currency than their money budgets.
func TestOpenChain(t *testing.T) {
	t.Setenv(FallbackKeyEnv("together"), "k1")
	t.Setenv(FallbackKeyEnv("reseller"), "k2")
	ctx := context.Background()
	primary, err := Profile(Config{Preset: "groq", FallbackAfter: 5, FallbackCoolDown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := OpenChain(ctx, Config{}, []string{"together", "reseller"}, primary, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	if want := (llm.FallbackPolicy{Failures: 5, MaxWait: 2 * time.Minute, CoolDown: time.Hour}); ch.Policy != want {
		t.Errorf("policy %+v, want %+v", ch.Policy, want)
	}
	if len(ch.Fallbacks) != 2 {
		t.Errorf("fallbacks %v", ch.Fallbacks)
	}
	cfg, err := tenants.Parse([]byte("currency: USD\ntenants: {a: {share: 1, budget: {monthly: {cost: 100}}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := &tenants.Budgets{File: tenants.Static(cfg)}
	if _, err := OpenChain(ctx, Config{}, []string{"together"}, primary, b, 8); err != nil {
		t.Errorf("a USD fallback under USD budgets: %v", err)
	}
	_, err = OpenChain(ctx, Config{}, []string{"together", "reseller"}, primary, b, 8)
	if !errors.Is(err, tenants.ErrCurrency) || !strings.Contains(err.Error(), "fallback reseller") {
		t.Errorf("the RUB reseller under USD budgets: %v, want a currency refusal naming it", err)
	}
}
