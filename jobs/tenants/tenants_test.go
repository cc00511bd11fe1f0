package tenants_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

const example = `
tenants:
  legal:   {share: 3, budget: {daily: {cost: 50}, monthly: {cost: 800, tokens: 0}}}
  catalog: {share: 1, budget: {daily: {tokens: 20000000}}}
default: {share: 2}
`

func TestParse(t *testing.T) {
	c, err := tenants.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Share("legal"); got != 3 {
		t.Errorf("legal share = %v, want 3", got)
	}
	if got := c.Lookup("legal").Budget.Monthly.Cost; got != 800 {
		t.Errorf("legal monthly cost = %v, want 800", got)
	}
	if got := c.Lookup("catalog").Budget.Daily.Tokens; got != 20000000 {
		t.Errorf("catalog daily tokens = %v", got)
	}
	if got := c.Share("unlisted"); got != 2 {
		t.Errorf("unlisted tenant share = %v, want the default's 2", got)
	}
	if got := c.Share(""); got != 2 {
		t.Errorf("no tenant share = %v, want the default's 2", got)
	}
	if got := c.Lookup("unlisted").Budget; !got.Daily.Unlimited() || !got.Monthly.Unlimited() {
		t.Errorf("unlisted tenant budget = %+v, want unlimited", got)
	}
	empty, err := tenants.Parse(nil)
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if empty.Share("x") != 1 || empty.Location() != time.UTC {
		t.Errorf("empty file: share %v, zone %v; want 1 and UTC", empty.Share("x"), empty.Location())
	}
	for name, bad := range map[string]string{
		"unknown field":   "tenants: {a: {shares: 2}}",
		"negative share":  "tenants: {a: {share: -1}}",
		"negative budget": "tenants: {a: {budget: {daily: {cost: -5}}}}",
		"bad timezone":    "timezone: Mars/Olympus",
		"bad name":        "tenants: {'a b': {share: 1}}",
		"negative slots":  "slots: -2",
	} {
		if _, err := tenants.Parse([]byte(bad)); err == nil {
			t.Errorf("%s: Parse(%q) accepted it", name, bad)
		}
	}
}

func TestPeriodsInTimezone(t *testing.T) {
	c, err := tenants.Parse([]byte("timezone: Asia/Tokyo"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC) // 01:00 on Dec 1st in Tokyo
	day, month := c.Periods(at)
	if day != "2026-12-01" || month != "2026-12" {
		t.Errorf("Periods = %s, %s; want 2026-12-01, 2026-12", day, month)
	}
	utc, _ := tenants.Parse(nil)
	if day, month := utc.Periods(at); day != "2026-11-30" || month != "2026-11" {
		t.Errorf("UTC Periods = %s, %s", day, month)
	}
}

// countingHandler counts warnings.
type countingHandler struct {
	slog.Handler
	warns *int
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		*h.warns++
	}
	return nil
}

func TestFileHotReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write("tenants: {a: {share: 1}}", base)
	var warns int
	log := slog.New(countingHandler{Handler: slog.NewTextHandler(&bytes.Buffer{}, nil), warns: &warns})
	f, err := tenants.Open(path, log)
	if err != nil {
		t.Fatal(err)
	}
	now := base
	f.Now = func() time.Time { return now }
	if got := f.Config().Share("a"); got != 1 {
		t.Fatalf("share = %v, want 1", got)
	}
	write("tenants: {a: {share: 5}}", base.Add(time.Minute))
	if got := f.Config().Share("a"); got != 1 {
		t.Errorf("re-read before CheckEvery passed: share = %v, want still 1", got)
	}
	now = now.Add(tenants.DefaultCheckEvery)
	if got := f.Config().Share("a"); got != 5 {
		t.Errorf("after the edit: share = %v, want 5", got)
	}
	// A broken edit keeps the last good configuration and warns once.
	write("tenants: {a: {share: [", base.Add(2*time.Minute))
	for range 3 {
		now = now.Add(tenants.DefaultCheckEvery)
		if got := f.Config().Share("a"); got != 5 {
			t.Errorf("after a broken edit: share = %v, want the last good 5", got)
		}
	}
	if warns != 1 {
		t.Errorf("broken edit logged %d times, want once", warns)
	}
	write("tenants: {a: {share: 7}}", base.Add(3*time.Minute))
	now = now.Add(tenants.DefaultCheckEvery)
	if got := f.Config().Share("a"); got != 7 {
		t.Errorf("after the fix: share = %v, want 7", got)
	}
	if _, err := tenants.Open(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	write("tenants: {a: {share: -1}}", base)
	if _, err := tenants.Open(path, nil); err == nil {
		t.Error("Open of a broken file succeeded")
	}
}

func TestCheck(t *testing.T) {
	c, err := tenants.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	st := tenants.NewStatus(c, "legal", at, tenants.Spend{Cost: 12.5}, tenants.Spend{Cost: 790})
	// 10 left this month, 37.5 today: a 20.00 estimate is over the month's.
	err = st.Check(tenants.Spend{Cost: 20}, "EUR", c, at)
	var be *tenants.BudgetError
	if !errors.As(err, &be) || !errors.Is(err, tenants.ErrOverBudget) {
		t.Fatalf("Check = %v, want a *BudgetError", err)
	}
	if be.Period != "monthly" || be.Unit != "cost" || be.Remaining != 10 || be.Estimate != 20 {
		t.Errorf("BudgetError = %+v, want monthly cost, 10 left, estimate 20", be)
	}
	for _, want := range []string{`"legal"`, "20.00 EUR", "10.00 EUR", "monthly"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
	if err := st.Check(tenants.Spend{Cost: 9.99, Tokens: 1 << 40}, "EUR", c, at); err != nil {
		t.Errorf("an estimate within the budget (tokens unlimited) was refused: %v", err)
	}
	// 40 today leaves 10 of the daily 50: the daily budget refuses 11.
	st = tenants.NewStatus(c, "legal", at, tenants.Spend{Cost: 40}, tenants.Spend{Cost: 40})
	if err := st.Check(tenants.Spend{Cost: 11}, "EUR", c, at); !errors.As(err, &be) || be.Period != "daily" {
		t.Errorf("Check = %v, want the daily budget's refusal", err)
	}
	// Tokens.
	cat := tenants.NewStatus(c, "catalog", at, tenants.Spend{Tokens: 19_000_000}, tenants.Spend{})
	if err := cat.Check(tenants.Spend{Tokens: 1_000_001}, "", c, at); !errors.As(err, &be) || be.Unit != "tokens" || be.Remaining != 1_000_000 {
		t.Errorf("Check = %v, want a tokens refusal with 1000000 left", err)
	}
	if err := cat.Exhausted(c, at); err != nil {
		t.Errorf("Exhausted with tokens left = %v", err)
	}
	cat.Today.Tokens = 20_000_000
	err = cat.Exhausted(c, at)
	if !errors.As(err, &be) || !be.Until.Equal(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Exhausted = %v, want spent until the next day", err)
	}
	if got := *cat.RemainingToday().Tokens; got != 0 {
		t.Errorf("RemainingToday = %d, want 0", got)
	}
	if cat.RemainingThisMonth().Tokens != nil || cat.RemainingThisMonth().Cost != nil {
		t.Error("catalog has no monthly budget but RemainingThisMonth is not unlimited")
	}
	// No budget: never refused.
	free := tenants.NewStatus(c, "other", at, tenants.Spend{Cost: 1e9}, tenants.Spend{Cost: 1e9})
	if err := free.Check(tenants.Spend{Cost: 1e9, Tokens: 1e12}, "", c, at); err != nil {
		t.Errorf("unlimited tenant refused: %v", err)
	}
}

func TestLedgerAndBudgets(t *testing.T) {
	_, rdb := jobstest.Redis(t, jobstest.DBTenants)
	ctx := context.Background()
	c, err := tenants.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	tr := jobs.NewTracker(rdb, "")
	b := &tenants.Budgets{File: tenants.Static(c), Ledger: tenants.NewLedger(rdb, ""), Tracker: tr, Now: func() time.Time { return now }}
	if err := b.Charge(ctx, "legal", tenants.Spend{Cost: 30, Tokens: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := b.Charge(ctx, "legal", tenants.Spend{Cost: 15.5, Tokens: 500}); err != nil {
		t.Fatal(err)
	}
	if err := b.Charge(ctx, "catalog", tenants.Spend{Tokens: 7}); err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx, "legal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Today != (tenants.Spend{Cost: 45.5, Tokens: 1500}) || st.ThisMonth != st.Today {
		t.Errorf("status = %+v, want 45.5 and 1500 today and this month", st)
	}
	if err := b.CheckEstimate(ctx, "legal", tenants.Spend{Cost: 4.5}, "USD"); err != nil {
		t.Errorf("unexpected refusal: %v", err)
	}
	err = b.CheckEstimate(ctx, "legal", tenants.Spend{Cost: 4.6}, "USD")
	var be *tenants.BudgetError
	if !errors.As(err, &be) || be.Remaining != 4.5 || !strings.Contains(err.Error(), "4.50 USD") {
		t.Errorf("CheckEstimate = %v, want refused with 4.50 USD left", err)
	}
	if err := b.CheckSpent(ctx, "legal"); err != nil {
		t.Errorf("CheckSpent with 4.5 left = %v", err)
	}
	if err := b.Charge(ctx, "legal", tenants.Spend{Cost: 4.5}); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckSpent(ctx, "legal"); !errors.Is(err, tenants.ErrOverBudget) {
		t.Errorf("CheckSpent with nothing left = %v, want ErrOverBudget", err)
	}
	// The keys expire after their period.
	keys, err := rdb.Keys(ctx, "llamapipe:tenants:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Errorf("ledger keys = %v, want a day and a month for each of two tenants", keys)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
	}
	// The next day (and month) starts from zero: the pause ends by itself.
	now = now.Add(2 * time.Hour)
	if err := b.CheckSpent(ctx, "legal"); err != nil {
		t.Errorf("CheckSpent on the next day = %v", err)
	}
	if st, _ := b.Status(ctx, "legal"); st.Today != (tenants.Spend{}) || st.Month != "2026-12" {
		t.Errorf("next day's status = %+v", st)
	}

	// A batch's tenant, remembered for a minute.
	if err := tr.Create(ctx, jobs.Batch{ID: "b1", Spec: jobs.Spec{Tenant: "legal"}, Created: now}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.BatchTenant(ctx, "b1"); err != nil || got != "legal" {
		t.Fatalf("BatchTenant = %q, %v", got, err)
	}
	rdb.Del(ctx, "llamapipe:batch:{b1}")
	if got, err := b.BatchTenant(ctx, "b1"); err != nil || got != "legal" {
		t.Errorf("BatchTenant within the minute = %q, %v; want the remembered legal", got, err)
	}
	now = now.Add(tenants.BatchTenantTTL)
	if _, err := b.BatchTenant(ctx, "b1"); !errors.Is(err, jobs.ErrNoBatch) {
		t.Errorf("BatchTenant after the minute = %v, want it read again (ErrNoBatch)", err)
	}
}

func TestSummary(t *testing.T) {
	c, err := tenants.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	got := tenants.NewStatus(c, "legal", at, tenants.Spend{Cost: 12.5, Tokens: 1000}, tenants.Spend{Cost: 100, Tokens: 9000}).Summary("EUR")
	want := "legal: today 12.50 EUR and 1000 tokens (37.50 EUR of 50.00 EUR left); this month 100.00 EUR and 9000 tokens (700.00 EUR of 800.00 EUR left) [UTC]"
	if got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	got = tenants.NewStatus(c, "catalog", at, tenants.Spend{Tokens: 25_000_000}, tenants.Spend{}).Summary("")
	if !strings.Contains(got, "0 of 20000000 tokens left") || !strings.Contains(got, "this month 0.00 and 0 tokens (no budget)") {
		t.Errorf("Summary = %s", got)
	}
}
