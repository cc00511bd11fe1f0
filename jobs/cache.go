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
// within a batch and across batches of the same tenant. Every method takes
// the tenant the result belongs to (ContentScope of the item's batch): a
// tenant never sees, waits for or learns of another tenant's result. ""
// is a batch without a tenant (the unscoped keys of before tenants).

// ContentScope is the tenant a batch's results by content are kept for:
// the batch's tenant, "" for none.
func (t *Tracker) ContentScope(ctx context.Context, batch string) (string, error) {
	b, err := t.Get(ctx, batch)
	if err != nil {
		return "", err
	}
	return b.Tenant, nil
}

// CachedResult returns the tenant's result stored under a content key, if
// any.
func (t *Tracker) CachedResult(ctx context.Context, tenant, key string) ([]byte, bool, error) {
	b, err := t.rdb.Get(ctx, ContentResultKey(t.prefix, tenant, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("content cache %s: %w", key, err)
	}
	return b, true, nil
}

// ClaimResult makes owner the one who computes the tenant's result of a
// content key for up to ttl. It reports false when another item of the
// tenant already holds the claim: that item's result will be there
// shortly.
func (t *Tracker) ClaimResult(ctx context.Context, tenant, key, owner string, ttl time.Duration) (bool, error) {
	ck := ContentClaimKey(t.prefix, tenant, key)
	ok, err := t.rdb.SetNX(ctx, ck, owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	if !ok {
		// A retry of the claim's own owner holds it again.
		cur, err := t.rdb.Get(ctx, ck).Result()
		if err == nil && cur == owner {
			return true, nil
		}
	}
	return ok, nil
}

// StoreResult keeps the tenant's result under its content key for ttl and
// releases the claim.
func (t *Tracker) StoreResult(ctx context.Context, tenant, key string, result []byte, ttl time.Duration) error {
	if _, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, ContentResultKey(t.prefix, tenant, key), result, ttl)
		p.Del(ctx, ContentClaimKey(t.prefix, tenant, key))
		return nil
	}); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// ReleaseClaim drops a claim without a result (the owner failed).
func (t *Tracker) ReleaseClaim(ctx context.Context, tenant, key, owner string) error {
	ck := ContentClaimKey(t.prefix, tenant, key)
	cur, err := t.rdb.Get(ctx, ck).Result()
	if err != nil || cur != owner {
		return nil
	}
	return t.rdb.Del(ctx, ck).Err()
}
