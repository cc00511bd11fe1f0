package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Results by content (ContentKey) are kept in Redis (ContentResultKey,
// ContentClaimKey) so that identical inputs are sent to the model once,
// within a batch and across batches.

// CachedResult returns the result stored under a content key, if any.
func (t *Tracker) CachedResult(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := t.rdb.Get(ctx, ContentResultKey(t.prefix, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("content cache %s: %w", key, err)
	}
	return b, true, nil
}

// ClaimResult makes owner the one who computes the result of a content key
// for up to ttl. It reports false when another item already holds the claim:
// that item's result will be there shortly.
func (t *Tracker) ClaimResult(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	ok, err := t.rdb.SetNX(ctx, ContentClaimKey(t.prefix, key), owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	if !ok {
		// A retry of the claim's own owner holds it again.
		cur, err := t.rdb.Get(ctx, ContentClaimKey(t.prefix, key)).Result()
		if err == nil && cur == owner {
			return true, nil
		}
	}
	return ok, nil
}

// StoreResult keeps a result under its content key for ttl and releases
// the claim.
func (t *Tracker) StoreResult(ctx context.Context, key string, result []byte, ttl time.Duration) error {
	if _, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, ContentResultKey(t.prefix, key), result, ttl)
		p.Del(ctx, ContentClaimKey(t.prefix, key))
		return nil
	}); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// ReleaseClaim drops a claim without a result (the owner failed).
func (t *Tracker) ReleaseClaim(ctx context.Context, key, owner string) error {
	cur, err := t.rdb.Get(ctx, ContentClaimKey(t.prefix, key)).Result()
	if err != nil || cur != owner {
		return nil
	}
	return t.rdb.Del(ctx, ContentClaimKey(t.prefix, key)).Err()
}
