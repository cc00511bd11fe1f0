package batchmode

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
)

// Defaults of Config.OnlineAfter and Config.OnlineAfterFailures.
const (
	DefaultOnlineAfter         = 15 * time.Minute
	DefaultOnlineAfterFailures = 5
)

// providerError is a failure of the provider's batch API (an upload,
// a job's creation or status, its results), not of ours.
type providerError struct{ err error }

func (e *providerError) Error() string { return e.err.Error() }
func (e *providerError) Unwrap() error { return e.err }

// failed records a failure of the provider's batch API in a collector
// (what "collect") or a job's poller (what "poll:<job>") whose requests
// are ids: the batches they belong to show it (Counts.Warning, with the
// provider's message), the metrics count it, and it is logged. It reports
// whether the failures have lasted long enough (Config.OnlineAfter) or
// been many enough (Config.OnlineAfterFailures) for the requests to go
// online.
func (b *Mode) failed(ctx context.Context, what string, ids []string, cause error) (bool, error) {
	key := jobs.BatchModeFailKey(b.group, what)
	now := b.now()
	var n *redis.IntCmd
	var first *redis.StringCmd
	_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSetNX(ctx, key, "first", now.UnixMilli())
		n = pl.HIncrBy(ctx, key, "count", 1)
		pl.HSet(ctx, key, "message", cause.Error())
		first = pl.HGet(ctx, key, "first")
		pl.Expire(ctx, key, jobs.BatchModeJobTTL)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("batch mode: record a failure: %w", err)
	}
	ms, _ := strconv.ParseInt(first.Val(), 10, 64)
	since := time.UnixMilli(ms)
	count := int(n.Val())
	b.metrics.BatchModeFailure(b.group, stageOf(what))
	giveUp := count >= b.onlineFailures || now.Sub(since) >= b.onlineAfter
	b.log.WarnContext(ctx, "provider batch API failing", "stage", what, "failures", count, "since", since, "online", giveUp, "error", cause.Error())
	msg := fmt.Sprintf("provider batch API failing (%s, %d times since %s): %v; its requests go online after %d failures or %s",
		what, count, since.UTC().Format(time.TimeOnly), cause, b.onlineFailures, b.onlineAfter)
	if giveUp {
		msg = ""
		if err := b.rdb.Del(ctx, key).Err(); err != nil {
			return false, fmt.Errorf("batch mode: %w", err)
		}
	}
	return giveUp, b.warn(ctx, ids, msg)
}

// recovered clears what's failure record and the warning of the batches
// its requests belong to, once the provider's batch API answered again.
func (b *Mode) recovered(ctx context.Context, what string, ids []string) error {
	n, err := b.rdb.Del(ctx, jobs.BatchModeFailKey(b.group, what)).Result()
	if err != nil || n == 0 {
		return err
	}
	return b.warn(ctx, ids, "")
}

// warn sets msg ("": clears) as the warning of the batches ids belong to.
func (b *Mode) warn(ctx context.Context, ids []string, msg string) error {
	batches, _, err := b.batchesOf(ctx, ids)
	if err != nil {
		return err
	}
	for batch := range batches {
		if err := b.tracker.SetWarning(ctx, batch, msg); err != nil {
			return err
		}
	}
	return nil
}

// batchesOf returns the batches that asked for requests ids, and whether
// some request's batch is unknown (its record gone).
func (b *Mode) batchesOf(ctx context.Context, ids []string) (batches map[string]bool, unknown bool, err error) {
	batches = map[string]bool{}
	for start := 0; start < len(ids); start += 1000 {
		cmds, err := b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, id := range ids[start:min(start+1000, len(ids))] {
				pl.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "batch")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, fmt.Errorf("batch mode: %w", err)
		}
		for _, c := range cmds {
			if owner, _ := c.(*redis.StringCmd).Result(); owner != "" {
				batches[owner] = true
			} else {
				unknown = true
			}
		}
	}
	return batches, unknown, nil
}

func stageOf(what string) string {
	if what == "collect" {
		return "collect"
	}
	return "poll"
}
