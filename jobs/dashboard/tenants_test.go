package dashboard

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

func TestBatchPageShowsTheTenantsSpend(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg, err := tenants.Parse([]byte("tenants: {legal: {budget: {daily: {cost: 50}, monthly: {tokens: 100000}}}}"))
	if err != nil {
		t.Fatal(err)
	}
	budgets := &tenants.Budgets{File: tenants.Static(cfg), Now: func() time.Time { return now }}
	f := newFixture(t, func(c *Config) { c.Tenants = budgets })
	budgets.Ledger = tenants.NewLedger(f.rdb, "")
	ctx := context.Background()
	if err := f.tracker.Create(ctx, jobs.Batch{ID: "b-tenant", Created: now, Spec: jobs.Spec{Tenant: "legal", Task: jobs.TaskAuto, Queue: jobs.QueueDefault}}); err != nil {
		t.Fatal(err)
	}
	if err := budgets.Charge(ctx, "legal", tenants.Spend{Cost: 12.5, Tokens: 1500}); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(t, "GET", "/batches/b-tenant", "bearer", nil)
	for _, want := range []string{
		`<td class="tenant">legal</td>`,
		`<td class="tenant-today">12.5000, 1500 tokens — left: 37.5000</td>`,
		`<td class="tenant-month">12.5000, 1500 tokens — left: 98500 tokens (UTC)</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("batch page lacks %s", want)
		}
	}
	// A batch without a tenant has no tenant rows.
	if _, body := f.do(t, "GET", "/batches/"+f.batch, "bearer", nil); strings.Contains(body, `class="tenant`) {
		t.Error("a batch without a tenant shows tenant rows")
	}

	// Without the tenants file, the spend (today, UTC) is shown without a budget.
	real := &tenants.Budgets{File: tenants.Static(nil), Ledger: tenants.NewLedger(f.rdb, "")}
	if err := real.Charge(ctx, "legal", tenants.Spend{Cost: 1, Tokens: 7}); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Tracker: f.tracker, RedisConnOpt: f.opt, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/batches/b-tenant")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	st, err := real.Status(ctx, "legal")
	if err != nil {
		t.Fatal(err)
	}
	if want := `<td class="tenant-today">` + tenantView(st, "").Today + `</td>`; !strings.Contains(string(b), want) || strings.Contains(want, "left") {
		t.Errorf("page without the tenants file lacks %s (or shows a budget)", want)
	}
}
