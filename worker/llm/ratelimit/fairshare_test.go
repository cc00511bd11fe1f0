package ratelimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// gated is a fake provider whose calls block until released; entered
// receives each call's tenant as it starts.
type gated struct {
	entered chan string
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func newGated() *gated {
	return &gated{entered: make(chan string, 100), release: make(chan struct{})}
}

func (g *gated) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	return g.complete(ctx, "")
}

// ForTask makes the gate's client report t's tenant on entered.
func (g *gated) ForTask(t *llm.Task) llm.Client { return gatedTask{g, t.TenantOf()} }

type gatedTask struct {
	*gated
	tenant string
}

func (g gatedTask) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	return g.complete(ctx, g.tenant)
}

func (g *gated) complete(ctx context.Context, tenant string) (llm.Response, error) {
	g.mu.Lock()
	g.now++
	g.most = max(g.most, g.now)
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	g.entered <- tenant
	select {
	case <-g.release:
		return llm.Response{Text: "ok"}, nil
	case <-ctx.Done():
		return llm.Response{}, ctx.Err()
	}
}

func (g *gated) Profile() llm.Profile { return llm.Profile{Provider: "fake", Model: "m"} }

// call starts a call of tenant in the background; its error arrives on the
// returned channel.
func call(c llm.Client, ctx context.Context, tenant string) chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := llm.For(c, llm.NewTask(tenant)).Complete(ctx, llm.Request{})
		ch <- err
	}()
	return ch
}

// waitWaiters waits until n calls are in the waiting room.
func waitWaiters(t *testing.T, rdb redis.UniversalClient, key string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := rdb.ZCard(context.Background(), "{"+key+"}:fair:waiters").Val()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls waiting, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isDeferred(t *testing.T, err error, o FairShareOptions) {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) || !errors.Is(err, ErrDeferred) || !llm.IsRateLimited(err) || e.Kind != llm.Retryable {
		t.Fatalf("error %v: want a deferral (retryable, rate limited, ErrDeferred)", err)
	}
	if e.RetryAfter < o.Defer || e.RetryAfter > 2*o.Defer {
		t.Errorf("RetryAfter %v, want between %v and %v", e.RetryAfter, o.Defer, 2*o.Defer)
	}
}

func TestFairShareSlotsWaitAndDefer(t *testing.T) {
	rdb, key, g := newRedis(t), uniqueKey(t), newGated()
	o := FairShareOptions{Slots: 2, Waiting: 1, Defer: 300 * time.Millisecond}
	c := FairShare(g, rdb, key, o)
	ctx := context.Background()
	a1, a2 := call(c, ctx, "a"), call(c, ctx, "a")
	<-g.entered
	<-g.entered
	a3 := call(c, ctx, "a") // waits: the waiting room has space
	waitWaiters(t, rdb, key, 1)
	_, err := llm.For(c, llm.NewTask("a")).Complete(ctx, llm.Request{}) // the room is full
	isDeferred(t, err, o)
	g.release <- struct{}{}
	if tn := <-g.entered; tn != "a" {
		t.Errorf("entered %q", tn)
	}
	close(g.release)
	for _, ch := range []chan error{a1, a2, a3} {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
	if g.most != 2 {
		t.Errorf("at most %d calls at once, want the 2 slots", g.most)
	}
	if n := rdb.ZCard(ctx, "{"+key+"}:fair:leases").Val(); n != 0 {
		t.Errorf("%d leases left after every call ended", n)
	}
}

func TestFairShareFreeSlotGoesToTheTenantBelowItsShare(t *testing.T) {
	rdb, key, g := newRedis(t), uniqueKey(t), newGated()
	c := FairShare(g, rdb, key, FairShareOptions{Slots: 2, Waiting: 4})
	ctx := context.Background()
	errs := []chan error{call(c, ctx, "a"), call(c, ctx, "a")}
	<-g.entered
	<-g.entered
	errs = append(errs, call(c, ctx, "a")) // a's third waits first...
	waitWaiters(t, rdb, key, 1)
	errs = append(errs, call(c, ctx, "b")) // ...but b has nothing in flight
	waitWaiters(t, rdb, key, 2)
	g.release <- struct{}{}
	if tn := <-g.entered; tn != "b" {
		t.Fatalf("the freed slot went to %q, want b (a has its share in flight)", tn)
	}
	g.release <- struct{}{} // a: 0 in flight, b: 1
	if tn := <-g.entered; tn != "a" {
		t.Fatalf("the next slot went to %q, want a", tn)
	}
	close(g.release)
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
}

func TestFairShareWaitingRoomByShare(t *testing.T) {
	rdb, key, g := newRedis(t), uniqueKey(t), newGated()
	shares := map[string]float64{"a": 3, "b": 1}
	o := FairShareOptions{Slots: 1, Waiting: 4, Share: func(tn string) float64 { return shares[tn] }, Defer: 200 * time.Millisecond}
	c := FairShare(g, rdb, key, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := []chan error{call(c, ctx, "a")}
	<-g.entered
	errs = append(errs, call(c, ctx, "b")) // b's room: 4 × 1/4 = 1
	waitWaiters(t, rdb, key, 1)
	_, err := llm.For(c, llm.NewTask("b")).Complete(ctx, llm.Request{})
	isDeferred(t, err, o)
	for i := range 3 { // a's room: 4 × 3/4 = 3
		errs = append(errs, call(c, ctx, "a"))
		waitWaiters(t, rdb, key, int64(2+i))
	}
	_, err = llm.For(c, llm.NewTask("a")).Complete(ctx, llm.Request{})
	isDeferred(t, err, o)
	close(g.release)
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
}

func TestFairShareCancelWhileWaiting(t *testing.T) {
	rdb, key, g := newRedis(t), uniqueKey(t), newGated()
	c := FairShare(g, rdb, key, FairShareOptions{Slots: 1})
	first := call(c, context.Background(), "a")
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	waiting := call(c, ctx, "b")
	waitWaiters(t, rdb, key, 1)
	cancel()
	err := <-waiting
	if !llm.IsRateLimited(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v, want a rate-limited error wrapping context.Canceled", err)
	}
	waitWaiters(t, rdb, key, 0)
	close(g.release)
	if err := <-first; err != nil {
		t.Error(err)
	}
}

func TestFairShareRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	inner := &counter{}
	_, err := FairShare(inner, rdb, "k", FairShareOptions{Slots: 1}).Complete(context.Background(), llm.Request{})
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.Retryable || e.RateLimited || e.Code != "redis" {
		t.Errorf("error %v: want a retryable redis error", err)
	}
	if inner.calls.Load() != 0 {
		t.Error("the model was called without the gate")
	}
}

func TestFairShareNeverDefersATaskThatAlreadyCalled(t *testing.T) {
	rdb, key, g := newRedis(t), uniqueKey(t), newGated()
	c := FairShare(g, rdb, key, FairShareOptions{Slots: 1, Waiting: 1})
	task := llm.NewTask("a")
	tc := llm.For(c, task)
	first := make(chan error, 1)
	go func() { _, err := tc.Complete(context.Background(), llm.Request{}); first <- err }()
	<-g.entered
	if !task.Started() {
		t.Fatal("the task's first call went through but the task is not marked started")
	}
	other := call(c, context.Background(), "a") // fills a's waiting room
	waitWaiters(t, rdb, key, 1)
	if _, err := llm.For(c, llm.NewTask("a")).Complete(context.Background(), llm.Request{}); !errors.Is(err, ErrDeferred) {
		t.Fatalf("a new task's call with the room full: %v, want deferred", err)
	}
	second := make(chan error, 1)
	go func() { _, err := tc.Complete(context.Background(), llm.Request{}); second <- err }() // the same task again: waits
	waitWaiters(t, rdb, key, 2)
	close(g.release)
	for _, ch := range []chan error{first, other, second} {
		if err := <-ch; err != nil {
			t.Errorf("call: %v", err)
		}
	}
}
