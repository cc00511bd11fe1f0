package tenants

import (
	"context"
	"sync"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// BatchTenantTTL is how long Budgets remembers a batch's tenant.
const BatchTenantTTL = time.Minute

// BatchReader reads a batch record: all Budgets needs of a *jobs.Tracker.
type BatchReader interface {
	Get(ctx context.Context, id string) (jobs.Batch, error)
}

var _ BatchReader = (*jobs.Tracker)(nil)

// Budgets puts the tenants file, the ledger and the clock together: what
// ingest checks an estimate against and what workers charge and check.
// Safe for concurrent use.
type Budgets struct {
	// File is the tenants file. Required.
	File *File
	// Ledger keeps the spend. Required.
	Ledger *Ledger
	// Tracker reads a batch's tenant (BatchTenant); a *jobs.Tracker. Nil:
	// BatchTenant answers "".
	Tracker BatchReader
	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	batches map[string]batchTenant
}

type batchTenant struct {
	name string
	at   time.Time
}

func (b *Budgets) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Config is the current tenants configuration.
func (b *Budgets) Config() *Config { return b.File.Config() }

// CheckCurrency is Config.CheckCurrency, for workers starting with a
// model priced in currency; a nil b checks nothing.
func (b *Budgets) CheckCurrency(currency string) error {
	if b == nil {
		return nil
	}
	return b.Config().CheckCurrency(currency)
}

// Status reads a tenant's spend today and this month with its budget.
func (b *Budgets) Status(ctx context.Context, tenant string) (Status, error) {
	c, at := b.Config(), b.now()
	today, month, err := b.Ledger.Spent(ctx, c, tenant, at)
	if err != nil {
		return Status{}, err
	}
	return NewStatus(c, tenant, at, today, month), nil
}

// CheckEstimate refuses a batch whose estimate is over the tenant's
// remaining daily or monthly budget (a *BudgetError); currency labels
// money in the message.
func (b *Budgets) CheckEstimate(ctx context.Context, tenant string, est Spend, currency string) error {
	c, at := b.Config(), b.now()
	t := c.Lookup(tenant)
	if t.Budget.Daily.Unlimited() && t.Budget.Monthly.Unlimited() {
		return nil
	}
	if err := c.CheckCurrency(currency); err != nil {
		return err
	}
	today, month, err := b.Ledger.Spent(ctx, c, tenant, at)
	if err != nil {
		return err
	}
	return NewStatus(c, tenant, at, today, month).Check(est, currency, c, at)
}

// CheckSpent returns a *BudgetError when the tenant has nothing left of
// its daily or monthly budget (workers pause its items), else nil. A
// tenant without a budget costs no Redis call.
func (b *Budgets) CheckSpent(ctx context.Context, tenant string) error {
	c, at := b.Config(), b.now()
	t := c.Lookup(tenant)
	if t.Budget.Daily.Unlimited() && t.Budget.Monthly.Unlimited() {
		return nil
	}
	today, month, err := b.Ledger.Spent(ctx, c, tenant, at)
	if err != nil {
		return err
	}
	return NewStatus(c, tenant, at, today, month).Exhausted(c, at)
}

// Charge adds a recorded item's tokens and cost to its tenant's day and
// month (now, in the file's zone). Call it once per recorded item.
func (b *Budgets) Charge(ctx context.Context, tenant string, s Spend) error {
	return b.Ledger.Charge(ctx, b.Config(), tenant, b.now(), s)
}

// BatchTenant returns a batch's tenant, remembered for BatchTenantTTL.
func (b *Budgets) BatchTenant(ctx context.Context, batch string) (string, error) {
	if b.Tracker == nil {
		return "", nil
	}
	now := b.now()
	b.mu.Lock()
	bt, ok := b.batches[batch]
	b.mu.Unlock()
	if ok && now.Sub(bt.at) < BatchTenantTTL {
		return bt.name, nil
	}
	meta, err := b.Tracker.Get(ctx, batch)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batches == nil {
		b.batches = map[string]batchTenant{}
	}
	for id, old := range b.batches { // forget the stale ones
		if now.Sub(old.at) >= BatchTenantTTL {
			delete(b.batches, id)
		}
	}
	b.batches[batch] = batchTenant{name: meta.Tenant, at: now}
	return meta.Tenant, nil
}

// WebhookSecret is the key a tenant's webhooks are signed with, from the
// current tenants file (Config.WebhookSecret).
func (b *Budgets) WebhookSecret(tenant string) ([]byte, bool, error) {
	return b.Config().WebhookSecret(tenant)
}
