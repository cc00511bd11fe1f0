package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Provider is the llm.Error provider name of the limiter's own errors.
const Provider = "ratelimit"

// minWait is the shortest pause between two attempts to take a slot.
const minWait = 5 * time.Millisecond

// Wrap returns c limited to rpm requests and tpm tokens per minute, shared
// by every process that wraps a client with the same Redis and key. A limit
// ≤ 0 is off; with both off c itself is returned.
//
// Before each call it waits (as long as ctx allows) for one request slot,
// then for the call's estimated tokens: the input estimate (llm.EstimateInput)
// plus the request's MaxOutputTokens (zero when unset). A call estimated
// above tpm takes the whole minute's budget. After the call, reported usage
// above the estimate is charged as far as the budget allows, so later calls
// wait for it.
//
// When ctx ends while waiting, Complete returns a Retryable, RateLimited
// *llm.Error with the limiter's RetryAfter, without calling c. When Redis
// fails, it returns a Retryable *llm.Error and does not call c either: an
// unlimited call could break the shared quota.
func Wrap(c llm.Client, rdb redis.UniversalClient, key string, rpm, tpm int) llm.Client {
	return WrapObserved(c, rdb, key, rpm, tpm, nil)
}

// WrapObserved is Wrap, calling onWait with the time each call waited for
// the quota (when it waited at all).
func WrapObserved(c llm.Client, rdb redis.UniversalClient, key string, rpm, tpm int, onWait func(time.Duration)) llm.Client {
	if rpm <= 0 && tpm <= 0 {
		return c
	}
	return &limited{next: c, lim: redis_rate.NewLimiter(rdb), key: key, rpm: rpm, tpm: tpm, onWait: onWait}
}

type limited struct {
	next     llm.Client
	lim      *redis_rate.Limiter
	key      string
	rpm, tpm int
	onWait   func(time.Duration)
}

func (l *limited) Profile() llm.Profile { return l.next.Profile() }

// ForTask binds the client it wraps to t (the quota is shared by all tasks).
func (l *limited) ForTask(t *llm.Task) llm.Client {
	c := *l
	c.next = llm.For(l.next, t)
	return &c
}

// Estimate is the number of tokens the limiter charges for req before the
// call.
func Estimate(req llm.Request) int {
	in, _ := llm.EstimateInput(req)
	return in + max(req.MaxOutputTokens, 0)
}

func (l *limited) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	start := time.Now()
	if l.rpm > 0 {
		if err := l.wait(ctx, jobs.RequestRateKey(l.key), redis_rate.PerMinute(l.rpm), 1); err != nil {
			return llm.Response{}, err
		}
	}
	est := Estimate(req)
	tokLimit := redis_rate.PerMinute(l.tpm)
	if l.tpm > 0 {
		if err := l.wait(ctx, jobs.TokenRateKey(l.key), tokLimit, min(est, l.tpm)); err != nil {
			return llm.Response{}, err
		}
	}
	if d := time.Since(start); d >= minWait {
		waited(ctx, "quota", d)
		if l.onWait != nil {
			l.onWait(d) // the quota's wait, without the call itself
		}
	}
	resp, err := l.next.Complete(ctx, req)
	if l.tpm > 0 && err == nil {
		if used := resp.Usage.InputTokens + resp.Usage.OutputTokens; used > est {
			// Best effort: the answer is already here; a Redis error only
			// means the next call is charged less than it should.
			_, _ = l.lim.AllowAtMost(ctx, jobs.TokenRateKey(l.key), tokLimit, used-est)
		}
	}
	return resp, err
}

// wait takes n units from key's bucket, sleeping between attempts.
func (l *limited) wait(ctx context.Context, key string, limit redis_rate.Limit, n int) error {
	for {
		res, err := l.lim.AllowN(ctx, key, limit, n)
		if err != nil {
			if ctx.Err() != nil {
				return &llm.Error{Provider: Provider, NotSent: true, Kind: llm.Retryable, RateLimited: true, Err: fmt.Errorf("wait for %s: %w", key, ctx.Err())}
			}
			return &llm.Error{Provider: Provider, NotSent: true, Kind: llm.Retryable, Code: "redis", Err: fmt.Errorf("rate limit %s: %w", key, err)}
		}
		if res.Allowed > 0 {
			return nil
		}
		d := max(res.RetryAfter, minWait)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &llm.Error{Provider: Provider, NotSent: true, Kind: llm.Retryable, RateLimited: true, RetryAfter: d,
				Err: fmt.Errorf("wait for %s: %w", key, ctx.Err())}
		case <-t.C:
		}
	}
}

// waited records a rate-limit wait before a call as an event of the call's
// span (the worker's model.call span; nothing without one): what was
// waited for (the shared quota, or a hold the provider asked for) and how
// long. The wait is also added to the call's llm.Waits (the worker takes
// it off the call's latency).
func waited(ctx context.Context, what string, d time.Duration) {
	llm.AddWait(ctx, d)
	trace.SpanFromContext(ctx).AddEvent("rate_limit.wait", trace.WithAttributes(
		attribute.String("llamapipe.limit", what), attribute.Int64("llamapipe.wait_ms", d.Milliseconds())))
}
