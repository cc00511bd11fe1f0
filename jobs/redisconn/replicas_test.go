package redisconn

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelPrimary connects through the test Sentinel group to its primary
// (which has one replica). Database 9: nothing else uses it.
func sentinelPrimary(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	url := os.Getenv("LLAMAPIPE_TEST_SENTINEL_URL")
	if url == "" {
		tb.Fatal("no test Sentinel group (LLAMAPIPE_TEST_SENTINEL_URL): run the tests with `make test`")
	}
	opt, err := ParseURL(url + "&db=9")
	if err != nil {
		tb.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestReplicatedWaitsForAReplica(t *testing.T) {
	ctx := context.Background()
	key := "redisconn:test:replicated:" + strconv.FormatInt(time.Now().UnixNano(), 36)

	// A primary with a replica: the write is confirmed by it.
	rdb := sentinelPrimary(t)
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	r := NewReplicated(rdb)
	// The failover test (package worker) may be replacing the primary right
	// now: try until the group is whole again.
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r.forget(rdb)
		err = r.Pipelined(ctx, key, func(p redis.Pipeliner) { p.HSet(ctx, key, "f", "v") })
		n := r.replicas(ctx, rdb)
		if err == nil && n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write on the Sentinel group's primary: %v; replicas seen %d, want at least 1", err, n)
		}
	}

	if v := rdb.HGet(ctx, key, "f").Val(); v != "v" {
		t.Errorf("the replicated write reads back %q", v)
	}

	// A Redis without replicas is written to without WAIT (which would
	// block there until its timeout).
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	single := redis.NewClient(&redis.Options{Addr: addr, DB: 9})
	defer single.Close()
	defer single.Del(ctx, key)
	r = NewReplicated(single)
	r.Timeout = 300 * time.Millisecond
	if err := r.Pipelined(ctx, key, func(p redis.Pipeliner) { p.HSet(ctx, key, "f", "v") }); err != nil {
		t.Fatal(err)
	}
	if n := r.replicas(ctx, single); n != 0 {
		t.Errorf("the single Redis has %d replicas?", n)
	}
	// A primary believed to have a replica that confirms nothing: the
	// write is applied, and reported not replicated; the count is read
	// again afterwards.
	r.known[single] = replicaCount{n: 1, read: time.Now()}
	err = r.Pipelined(ctx, key, func(p redis.Pipeliner) { p.HSet(ctx, key, "g", "w") })
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("no replica confirmed: %v, want ErrNotReplicated", err)
	}
	if v := single.HGet(ctx, key, "g").Val(); v != "w" {
		t.Errorf("the write was not applied: %q", v)
	}
	if r.replicas(ctx, single) != 0 {
		t.Error("the replica count was not read again")
	}
}

// BenchmarkReplicatedWrite measures what WAIT 1 adds to a write on the
// Sentinel group's primary: the same HSET pipelined with and without it.
func BenchmarkReplicatedWrite(b *testing.B) {
	ctx := context.Background()
	rdb := sentinelPrimary(b)
	key := "redisconn:bench:replicated"
	b.Cleanup(func() { rdb.Del(context.Background(), key) })
	b.Run("plain", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.HSet(ctx, key, strconv.Itoa(i), "v"); return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wait-1-replica", func(b *testing.B) {
		r := NewReplicated(rdb)
		for i := 0; b.Loop(); i++ {
			if err := r.Pipelined(ctx, key, func(p redis.Pipeliner) { p.HSet(ctx, key, strconv.Itoa(i), "v") }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
