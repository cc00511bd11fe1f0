package tenants

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrOverBudget is what every *BudgetError matches with errors.Is.
var ErrOverBudget = errors.New("tenant budget exceeded")

// Status is a tenant's spend and budget at one moment.
type Status struct {
	// Tenant is the tenant's name ("" for batches without one).
	Tenant string `json:"tenant"`
	// Day and Month name the periods ("2026-11-25", "2026-11") in Timezone.
	Day      string `json:"day"`
	Month    string `json:"month"`
	Timezone string `json:"timezone"`
	// Today and ThisMonth are what was spent so far.
	Today     Spend `json:"today"`
	ThisMonth Spend `json:"this_month"`
	// Budget is the tenant's budget (zero limits: unlimited).
	Budget Budget `json:"budget"`
	// Share is the tenant's fair-share weight.
	Share float64 `json:"share"`
}

// NewStatus builds the status of a tenant from its spend.
func NewStatus(c *Config, tenant string, at time.Time, today, month Spend) Status {
	t := c.Lookup(tenant)
	day, mon := c.Periods(at)
	return Status{Tenant: tenant, Day: day, Month: mon, Timezone: c.Location().String(),
		Today: today, ThisMonth: month, Budget: t.Budget, Share: t.Share}
}

// Remaining is what is left of a limit: nil when unlimited.
type Remaining struct {
	Cost   *float64 `json:"cost,omitempty"`
	Tokens *int64   `json:"tokens,omitempty"`
}

func remaining(l Limits, spent Spend) Remaining {
	var r Remaining
	if l.Cost > 0 {
		v := max(l.Cost-spent.Cost, 0)
		r.Cost = &v
	}
	if l.Tokens > 0 {
		v := max(l.Tokens-spent.Tokens, 0)
		r.Tokens = &v
	}
	return r
}

// RemainingToday is what is left of the daily budget.
func (s Status) RemainingToday() Remaining { return remaining(s.Budget.Daily, s.Today) }

// RemainingThisMonth is what is left of the monthly budget.
func (s Status) RemainingThisMonth() Remaining { return remaining(s.Budget.Monthly, s.ThisMonth) }

// BudgetError says which budget a batch's estimate, or a tenant's spend,
// is over. It matches ErrOverBudget.
type BudgetError struct {
	Tenant string
	// Period is "daily" or "monthly"; Unit is "cost" or "tokens".
	Period, Unit string
	// Estimate is the batch's estimate (0 when the spend alone is over).
	Estimate float64
	// Limit, Spent and Remaining are the period's numbers in Unit.
	Limit, Spent, Remaining float64
	// Currency names the money unit, when known.
	Currency string
	// Until is when the period ends (the budget renews).
	Until time.Time
}

func (e *BudgetError) Is(target error) bool { return target == ErrOverBudget }

func (e *BudgetError) Error() string {
	name := e.Tenant
	if name == "" {
		name = "(no tenant: the default budget)"
	} else {
		name = fmt.Sprintf("%q", name)
	}
	num := func(v float64) string {
		if e.Unit == "tokens" {
			return fmt.Sprintf("%.0f tokens", v)
		}
		return strings.TrimSpace(fmt.Sprintf("%.2f %s", v, e.Currency))
	}
	when := map[string]string{"daily": "today", "monthly": "this month"}[e.Period]
	if e.Estimate > 0 {
		return fmt.Sprintf("tenant %s: the batch's estimated %s is over the tenant's remaining %s budget of %s (%s %s, %s spent %s)",
			name, num(e.Estimate), e.Period, num(e.Remaining), num(e.Limit), e.Period, num(e.Spent), when)
	}
	return fmt.Sprintf("tenant %s: %s budget spent (%s of %s %s); it renews at %s",
		name, e.Period, num(e.Spent), num(e.Limit), when, e.Until.Format(time.RFC3339))
}

// Check refuses an estimate over what is left of the daily or the monthly
// budget, in money or in tokens, with a *BudgetError naming the estimate and
// the remaining budget. currency labels money in the message.
func (s Status) Check(est Spend, currency string, c *Config, at time.Time) error {
	return s.check(est, currency, c, at, false)
}

// Exhausted returns a *BudgetError when the tenant has nothing left of a
// daily or monthly budget (spend at or over the limit), else nil.
func (s Status) Exhausted(c *Config, at time.Time) error {
	return s.check(Spend{}, "", c, at, true)
}

func (s Status) check(est Spend, currency string, c *Config, at time.Time, spentOnly bool) error {
	nextDay := c.NextDay(at)
	t := at.In(c.Location())
	nextMonth := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
	for _, p := range []struct {
		name  string
		lim   Limits
		spent Spend
		until time.Time
	}{{"daily", s.Budget.Daily, s.Today, nextDay}, {"monthly", s.Budget.Monthly, s.ThisMonth, nextMonth}} {
		e := &BudgetError{Tenant: s.Tenant, Period: p.name, Currency: currency, Until: p.until}
		if p.lim.Cost > 0 {
			left := p.lim.Cost - p.spent.Cost
			if (spentOnly && left <= 0) || (!spentOnly && est.Cost > left) {
				e.Unit, e.Estimate, e.Limit, e.Spent, e.Remaining = "cost", est.Cost, p.lim.Cost, p.spent.Cost, max(left, 0)
				return e
			}
		}
		if p.lim.Tokens > 0 {
			left := p.lim.Tokens - p.spent.Tokens
			if (spentOnly && left <= 0) || (!spentOnly && est.Tokens > left) {
				e.Unit, e.Estimate, e.Limit, e.Spent, e.Remaining = "tokens", float64(est.Tokens), float64(p.lim.Tokens), float64(p.spent.Tokens), float64(max(left, 0))
				return e
			}
		}
	}
	return nil
}

// Summary is one line for people: the tenant's spend today and this
// month, and what is left of each budget ("no budget" when unlimited).
// currency labels money.
func (s Status) Summary(currency string) string {
	money := func(v float64) string { return strings.TrimSpace(fmt.Sprintf("%.2f %s", v, currency)) }
	part := func(when string, spent Spend, lim Limits) string {
		str := fmt.Sprintf("%s %s and %d tokens", when, money(spent.Cost), spent.Tokens)
		var left []string
		if lim.Cost > 0 {
			left = append(left, fmt.Sprintf("%s of %s left", money(max(lim.Cost-spent.Cost, 0)), money(lim.Cost)))
		}
		if lim.Tokens > 0 {
			left = append(left, fmt.Sprintf("%d of %d tokens left", max(lim.Tokens-spent.Tokens, 0), lim.Tokens))
		}
		if len(left) == 0 {
			return str + " (no budget)"
		}
		return str + " (" + strings.Join(left, ", ") + ")"
	}
	name := s.Tenant
	if name == "" {
		name = "(none)"
	}
	return fmt.Sprintf("%s: %s; %s [%s]", name, part("today", s.Today, s.Budget.Daily),
		part("this month", s.ThisMonth, s.Budget.Monthly), s.Timezone)
}
