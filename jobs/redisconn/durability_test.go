package redisconn_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/redis/go-redis/v9"
)

// fakeRedis answers CONFIG GET and INFO as a managed Redis might.
type fakeRedis struct {
	config map[string]string // nil: CONFIG refused
	info   string
}

func (f fakeRedis) ConfigGet(_ context.Context, p string) *redis.MapStringStringCmd {
	if f.config == nil {
		return redis.NewMapStringStringResult(nil, errors.New("ERR unknown command 'CONFIG'"))
	}
	return redis.NewMapStringStringResult(map[string]string{p: f.config[p]}, nil)
}

func (f fakeRedis) Info(context.Context, ...string) *redis.StringCmd {
	return redis.NewStringResult(f.info, nil)
}

func TestCheckDurability(t *testing.T) {
	ctx := context.Background()
	durable := fakeRedis{config: map[string]string{"appendonly": "yes", "maxmemory-policy": "noeviction"}}
	if w := redisconn.CheckDurability(ctx, durable); len(w) != 0 {
		t.Errorf("durable Redis: %v", w)
	}
	w := redisconn.CheckDurability(ctx, fakeRedis{config: map[string]string{"appendonly": "no", "maxmemory-policy": "allkeys-lru"}})
	if len(w) != 2 || !strings.Contains(w[0], "AOF") || !strings.Contains(w[1], "allkeys-lru") {
		t.Errorf("Redis without AOF, evicting: %v", w)
	}
	// CONFIG refused: INFO tells.
	managed := fakeRedis{info: "# Persistence\r\naof_enabled:0\r\n# Memory\r\nmaxmemory_policy:volatile-lru\r\n"}
	if w := redisconn.CheckDurability(ctx, managed); len(w) != 2 || !strings.Contains(w[1], "volatile-lru") {
		t.Errorf("managed Redis without AOF, evicting: %v", w)
	}
	managed.info = "aof_enabled:1\r\nmaxmemory_policy:noeviction\r\n"
	if w := redisconn.CheckDurability(ctx, managed); len(w) != 0 {
		t.Errorf("durable managed Redis: %v", w)
	}
	// The test Redis (.ci/with-services runs it with appendonly yes and no
	// maxmemory-policy set: noeviction).
	// Only CONFIG and INFO are read: no database of its own, nothing flushed.
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if w := redisconn.CheckDurability(ctx, rdb); len(w) != 0 {
		t.Errorf("test Redis: %v", w)
	}
}

func TestWarnDurabilityLogsEachWarning(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	redisconn.WarnDurability(context.Background(), fakeRedis{config: map[string]string{"appendonly": "no", "maxmemory-policy": "allkeys-lru"}}, log)
	if n := strings.Count(buf.String(), "redis may lose data"); n != 2 {
		t.Errorf("%d warnings logged, want 2:\n%s", n, buf.String())
	}
	buf.Reset()
	redisconn.WarnDurability(context.Background(), fakeRedis{config: map[string]string{"appendonly": "yes", "maxmemory-policy": "noeviction"}}, log)
	if buf.Len() != 0 {
		t.Errorf("a durable Redis logged %q", buf.String())
	}
}
