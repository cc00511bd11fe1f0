package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Outages is llm.Outages kept in Redis, so that every worker's fallback
// chain switches away from a down provider together and back together
// when its down time ends. Names are quotas (jobs.ModelQuotaName: the
// preset or provider, and the model). A run of failures is forgotten
// coolDown after its last failure.
func Outages(rdb redis.UniversalClient, coolDown time.Duration) llm.Outages {
	return &outages{rdb: rdb, ttl: max(coolDown, time.Second)}
}

type outages struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

func (o *outages) DownUntil(ctx context.Context, quota string) (time.Time, error) {
	v, err := o.rdb.HGet(ctx, jobs.ProviderOutageKey(quota), "until").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

func (o *outages) Failed(ctx context.Context, quota string) (int, error) {
	key := jobs.ProviderOutageKey(quota)
	pipe := o.rdb.TxPipeline()
	n := pipe.HIncrBy(ctx, key, "failures", 1)
	pipe.PExpire(ctx, key, o.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return int(n.Val()), nil
}

func (o *outages) Succeeded(ctx context.Context, quota string) error {
	return o.rdb.HDel(ctx, jobs.ProviderOutageKey(quota), "failures").Err()
}

// MarkDown replaces the run of failures with the down mark, kept for the
// down time, and indexes it for status, the API and the dashboard
// (outage.Mark).
func (o *outages) MarkDown(ctx context.Context, quota string, d llm.Outage) error {
	return outage.Mark(ctx, o.rdb, quota, outage.Down{Provider: d.Provider, Kind: d.Kind, Model: d.Model, Until: d.Until, Reason: d.Reason}, time.Now())
}
