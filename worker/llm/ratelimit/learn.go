package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Learn wraps c so that what the provider says of its limits is shared by
// every worker of quota: after an answer whose rate-limit headers say a
// quota ran out (llm.RateLimits.Hold), or a 429 with a Retry-After, the
// next calls wait until it resets (jobs.ProviderHoldKey); an answer that
// says there is room again lifts the hold. Redis errors only lose the
// hint: calls are not refused for them.
func Learn(c llm.Client, rdb redis.UniversalClient, quota string) llm.Client {
	return &learner{next: c, rdb: rdb, key: jobs.ProviderHoldKey(quota), now: time.Now}
}

type learner struct {
	next llm.Client
	rdb  redis.UniversalClient
	key  string
	now  func() time.Time
}

func (l *learner) Profile() llm.Profile { return l.next.Profile() }

// ForTask binds the client it wraps to t.
func (l *learner) ForTask(t *llm.Task) llm.Client {
	c := *l
	c.next = llm.For(l.next, t)
	return &c
}

func (l *learner) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if err := l.waitHold(ctx); err != nil {
		return llm.Response{}, err
	}
	resp, err := l.next.Complete(ctx, req)
	var hold time.Duration
	switch {
	case err != nil:
		if d, ok := llm.RetryAfter(err); ok && llm.IsRateLimited(err) {
			hold = d
		}
	case resp.Limits != nil:
		hold = resp.Limits.Hold(Estimate(req))
		if hold == 0 {
			_ = l.rdb.Del(ctx, l.key).Err() // room again: relax
		}
	}
	if hold > 0 {
		until := l.now().Add(hold).UnixMilli()
		_ = l.rdb.Set(ctx, l.key, until, hold).Err()
	}
	return resp, err
}

// Held returns until when quota's calls are held (zero: not held).
func Held(ctx context.Context, rdb redis.UniversalClient, quota string) (time.Time, error) {
	v, err := rdb.Get(ctx, jobs.ProviderHoldKey(quota)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("hold of %s: %w", quota, err)
	}
	return time.UnixMilli(ms), nil
}

// waitHold sleeps until the shared hold ends (or ctx does).
func (l *learner) waitHold(ctx context.Context) error {
	start := time.Now()
	for {
		v, err := l.rdb.Get(ctx, l.key).Result()
		var d time.Duration
		if err == nil { // else no hold, or Redis away: go on
			ms, _ := strconv.ParseInt(v, 10, 64)
			d = time.UnixMilli(ms).Sub(l.now())
		}
		if d <= 0 {
			if w := time.Since(start); w >= minWait {
				waited(ctx, "provider_hold", w)
			}
			return nil
		}
		t := time.NewTimer(min(d, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return &llm.Error{Provider: Provider, NotSent: true, Kind: llm.Retryable, RateLimited: true, RetryAfter: d,
				Err: fmt.Errorf("wait for the provider's limits to reset: %w", ctx.Err())}
		case <-t.C:
		}
	}
}
