package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// durabilityClient is the part of a go-redis client CheckDurability uses.
type durabilityClient interface {
	ConfigGet(ctx context.Context, parameter string) *redis.MapStringStringCmd
	Info(ctx context.Context, section ...string) *redis.StringCmd
}

var _ durabilityClient = (redis.UniversalClient)(nil)

// CheckDurability returns warnings, for people, about a Redis that may lose
// llamapipe's data: one running without AOF (appendonly no: a restart
// loses what was written since the last snapshot, and the batches written
// then are reported lost), and one whose maxmemory-policy is not
// noeviction (under memory pressure Redis deletes batch records and queued
// tasks). It reads CONFIG GET, and INFO where CONFIG is refused (managed
// Redis services); none when Redis looks durable. Workers and `serve` log
// them at start.
func CheckDurability(ctx context.Context, rdb durabilityClient) []string {
	aof, aofErr := setting(ctx, rdb, "appendonly", "persistence", "aof_enabled")
	policy, policyErr := setting(ctx, rdb, "maxmemory-policy", "memory", "maxmemory_policy")
	var warn []string
	switch {
	case aofErr != nil:
		warn = append(warn, fmt.Sprintf("cannot tell whether Redis persists writes (AOF): %v", aofErr))
	case aof != "yes" && aof != "1":
		warn = append(warn, "Redis runs without AOF (appendonly no): a restart loses the batch records and queued tasks written since its last snapshot, and such batches are reported lost; set appendonly yes")
	}
	switch {
	case policyErr != nil:
		warn = append(warn, fmt.Sprintf("cannot tell Redis's maxmemory-policy: %v", policyErr))
	case policy != "noeviction":
		warn = append(warn, fmt.Sprintf("Redis's maxmemory-policy is %s, not noeviction: when memory runs short it deletes batch records and queued tasks; set maxmemory-policy noeviction", policy))
	}
	return warn
}

// setting reads a Redis setting with CONFIG GET name, or, when CONFIG is
// refused, the field infoField of INFO section.
func setting(ctx context.Context, rdb durabilityClient, name, section, infoField string) (string, error) {
	m, err := rdb.ConfigGet(ctx, name).Result()
	if v, ok := m[name]; err == nil && ok {
		return v, nil
	}
	info, ierr := rdb.Info(ctx, section).Result()
	if ierr != nil {
		if err == nil {
			err = fmt.Errorf("CONFIG GET %s: no answer", name)
		}
		return "", fmt.Errorf("%w; INFO %s: %w", err, section, ierr)
	}
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == infoField {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, infoField)
}

// WarnDurability logs each of CheckDurability's warnings, once at start of
// a long-running process (worker, serve).
func WarnDurability(ctx context.Context, rdb durabilityClient, log *slog.Logger) {
	for _, w := range CheckDurability(ctx, rdb) {
		log.WarnContext(ctx, "redis may lose data", "warning", w)
	}
}
