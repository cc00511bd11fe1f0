package lease_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/lease"
)

func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	// Database 0 is shared: the test uses a key of its own and flushes nothing.
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestOneHolderAtATime(t *testing.T) {
	rdb := testRedis(t)
	key := "llamapipe:test:lease:" + lease.Holder()
	ctx1, cancel1 := context.WithCancel(context.Background())
	lost1, err := lease.Acquire(ctx1, rdb, key, "one", 900*time.Millisecond, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { _, err := lease.Acquire(ctx2, rdb, key, "two", 900*time.Millisecond, "test", nil); got <- err }()
	select {
	case <-got:
		t.Fatal("a second holder took the lease while the first held it")
	case <-time.After(2 * time.Second): // several renewals: the first keeps it
	}
	cancel1()
	<-lost1
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the standby did not take over after the holder stopped")
	}
	if v, _ := rdb.Get(context.Background(), key).Result(); v != "two" {
		t.Fatalf("lease holder = %q, want two", v)
	}
}

func TestLostLeaseClosesChannel(t *testing.T) {
	rdb := testRedis(t)
	key := "llamapipe:test:lease:" + lease.Holder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost, err := lease.Acquire(ctx, rdb, key, "one", 600*time.Millisecond, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else takes the key (the holder stalled past its TTL).
	if err := rdb.Set(context.Background(), key, "thief", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not notice it lost the lease")
	}
	if v, _ := rdb.Get(context.Background(), key).Result(); v != "thief" {
		t.Fatalf("the old holder released a lease it no longer held: key = %q", v)
	}
	rdb.Del(context.Background(), key)
}

func TestTryAcquireOneAtATimeAndReleasesOnlyItsOwn(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	key := "llamapipe:test:trylease:" + lease.Holder()
	t.Cleanup(func() { rdb.Del(ctx, key) })
	release1, ok, err := lease.TryAcquire(ctx, rdb, key, "one", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first TryAcquire: ok=%v err=%v", ok, err)
	}
	release2, ok, err := lease.TryAcquire(ctx, rdb, key, "two", time.Minute)
	if err != nil || ok {
		t.Fatalf("second TryAcquire while held: ok=%v err=%v, want refused", ok, err)
	}
	release2() // not the holder: must not free the lease
	if v, _ := rdb.Get(ctx, key).Result(); v != "one" {
		t.Fatalf("holder after a refused release: %q, want one", v)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("lease TTL %v, want within a minute", ttl)
	}
	release1()
	if _, ok, _ := lease.TryAcquire(ctx, rdb, key, "three", time.Minute); !ok {
		t.Fatal("lease not free after its holder released it")
	}
}
