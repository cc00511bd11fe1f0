package tenants

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
)

// Spend is money and tokens spent (or estimated).
type Spend struct {
	// Cost is in the model profile's currency.
	Cost float64 `json:"cost"`
	// Tokens are input plus output tokens.
	Tokens int64 `json:"tokens"`
}

// Ledger keeps each tenant's spend per day and per month in Redis: one hash
// (fields cost and tokens) per tenant and period (jobs.TenantSpendKey),
// expiring a while after the period ends (jobs.SpendDayTTL,
// jobs.SpendMonthTTL). A tenant's keys share a hash tag (Redis Cluster).
type Ledger struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewLedger returns a Ledger. prefix namespaces the keys; empty means
// jobs.DefaultPrefix.
func NewLedger(rdb redis.UniversalClient, prefix string) *Ledger {
	return &Ledger{rdb: rdb, prefix: cmp.Or(prefix, jobs.DefaultPrefix)}
}

// Charge adds tokens and cost to the tenant's day and month that at falls
// in (in c's zone). The caller charges each recorded item once.
func (l *Ledger) Charge(ctx context.Context, c *Config, tenant string, at time.Time, s Spend) error {
	if s.Cost == 0 && s.Tokens == 0 {
		return nil
	}
	day, month := c.Periods(at)
	dk, mk := jobs.TenantSpendKey(l.prefix, tenant, day), jobs.TenantSpendKey(l.prefix, tenant, month)
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range []string{dk, mk} {
			if s.Cost != 0 {
				p.HIncrByFloat(ctx, k, "cost", s.Cost)
			}
			if s.Tokens != 0 {
				p.HIncrBy(ctx, k, "tokens", s.Tokens)
			}
		}
		p.Expire(ctx, dk, jobs.SpendDayTTL)
		p.Expire(ctx, mk, jobs.SpendMonthTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("charge tenant %q: %w", tenant, err)
	}
	return nil
}

// Spent returns the tenant's spend in the day and the month that at falls in.
func (l *Ledger) Spent(ctx context.Context, c *Config, tenant string, at time.Time) (today, month Spend, err error) {
	day, mon := c.Periods(at)
	var cmds [2]*redis.SliceCmd
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds[0] = p.HMGet(ctx, jobs.TenantSpendKey(l.prefix, tenant, day), "cost", "tokens")
		cmds[1] = p.HMGet(ctx, jobs.TenantSpendKey(l.prefix, tenant, mon), "cost", "tokens")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return today, month, fmt.Errorf("spend of tenant %q: %w", tenant, err)
	}
	read := func(cmd *redis.SliceCmd) Spend {
		var s Spend
		v := cmd.Val()
		if len(v) == 2 {
			if str, ok := v[0].(string); ok {
				s.Cost, _ = strconv.ParseFloat(str, 64)
			}
			if str, ok := v[1].(string); ok {
				s.Tokens, _ = strconv.ParseInt(str, 10, 64)
			}
		}
		return s
	}
	return read(cmds[0]), read(cmds[1]), nil
}
