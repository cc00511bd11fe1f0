package ratelimit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// FairShareProvider is the llm.Error provider name of the fair-share
// gate's own errors.
const FairShareProvider = "fairshare"

// ErrDeferred is wrapped by the error of a call the fair-share gate turned
// away: its tenant already has its share while others wait. It is an
// *llm.Error with RateLimited set (not a failure) and a RetryAfter.
var ErrDeferred = errors.New("deferred: the tenant has its fair share of the model while other tenants wait")

// FairShareOptions configures FairShare. Only Slots is required.
type FairShareOptions struct {
	// Slots is how many calls may be in flight at once across every process
	// sharing the Redis and key. Required: at least 1.
	Slots int
	// Waiting is how many calls may wait (in their process) for a slot
	// across every process, divided between the active tenants by share;
	// the others are deferred. Zero means Slots.
	Waiting int
	// Share returns a tenant's weight ("" is no tenant). Nil, or a result
	// ≤ 0, means 1. It is called on every call, so a hot-reloaded tenants
	// file takes effect at once.
	Share func(tenant string) float64
	// Defer is the least RetryAfter of a deferred call; a random part of up
	// to Defer more is added. Zero means one second.
	Defer time.Duration
	// MaxWait is how long a task's first call waits for a slot before it is
	// deferred. Zero means 30s.
	MaxWait time.Duration
	// Poll is how often a waiting call looks for a slot. Zero means 25ms.
	Poll time.Duration
	// ActiveWindow is how long after its last call a tenant still counts
	// in the shares of the waiting room. Zero means 10s.
	ActiveWindow time.Duration
	// LeaseTTL frees the slot of a process that died during a call. Zero
	// means 10 minutes; calls longer than that can overfill the slots.
	LeaseTTL time.Duration
	// OnDefer, when set, is called with the tenant of each deferred call.
	OnDefer func(tenant string)
}

// FairShare returns c behind a weighted fair-share gate kept in Redis under
// key, shared by every process that wraps a client with the same Redis and
// key. The tenant of a call is the task the client was bound to
// (llm.For(client, task)); calls of an unbound client are no tenant's and
// are each a task's first.
//
// Only a task's first call can be deferred: once a call of the same
// llm.Task was let through, later ones wait for a slot as long as their
// context allows (deferring them would pay again for the
// calls already made when the task is retried).
//
// At most Slots calls run at once. A free slot goes to the caller unless a
// tenant with fewer calls in flight per unit of share is waiting for one;
// then, and when every slot is taken, the call waits in its process — if
// its tenant's part of the waiting room (Waiting × share ÷ the active
// tenants' shares) has space — or is deferred: it returns a retryable,
// RateLimited *llm.Error wrapping ErrDeferred with a RetryAfter of Defer
// to 2×Defer, without calling c. A worker turns that into a retry that is
// not a failure: the task leaves the worker for the queue's retry set, so
// the workers reach the tasks queued behind it — another tenant's ten
// items are not held back by a burst of 100,000.
//
// Give the processes more concurrent tasks than Slots + Waiting, so some
// are always free to pass over a tenant's backlog. When Redis fails, the
// call returns a retryable *llm.Error and c is not called.
func FairShare(c llm.Client, rdb redis.UniversalClient, key string, o FairShareOptions) llm.Client {
	o.Slots = max(o.Slots, 1)
	o.Waiting = cmp.Or(o.Waiting, o.Slots)
	o.Defer = cmp.Or(o.Defer, time.Second)
	o.MaxWait = cmp.Or(o.MaxWait, 30*time.Second)
	o.Poll = cmp.Or(o.Poll, 25*time.Millisecond)
	o.ActiveWindow = cmp.Or(o.ActiveWindow, 10*time.Second)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, 10*time.Minute)
	return &fair{next: c, rdb: rdb, o: o,
		keys: []string{jobs.FairShareLeasesKey(key), jobs.FairShareWaitersKey(key), jobs.FairShareActiveKey(key), jobs.FairShareWeightsKey(key)}}
}

type fair struct {
	next llm.Client
	rdb  redis.UniversalClient
	o    FairShareOptions
	keys []string
	// task is whose calls these are (nil: unbound, no tenant).
	task *llm.Task
}

func (f *fair) Profile() llm.Profile { return f.next.Profile() }

// ForTask returns the gate for t's calls, the client it wraps bound to t.
func (f *fair) ForTask(t *llm.Task) llm.Client {
	c := *f
	c.next = llm.For(f.next, t)
	c.task = t
	return &c
}

// acquireScript returns 1 (slot taken), 0 (wait: the caller is in the
// waiting room) or -1 (deferred). Members are "tenant\nid".
//
// KEYS: leases, waiters (sorted sets scored by expiry in ms), active
// (tenant → last call in ms), weights (tenant → share).
// ARGV: tenant, id, weight, slots, waiting room, active window ms, lease
// TTL ms, waiter TTL ms.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tenant, me = ARGV[1], ARGV[1] .. '\n' .. ARGV[2]
local slots, room, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[3], now, tenant)
redis.call('HSET', KEYS[4], tenant, ARGV[3])
local function owner(m) return string.match(m, '^(.-)\n') end
local inflight, waiting, active = {}, {}, {}
local total = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local tn = owner(m)
  inflight[tn] = (inflight[tn] or 0) + 1
  total = total + 1
  active[tn] = true
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if m ~= me then
    local tn = owner(m)
    waiting[tn] = (waiting[tn] or 0) + 1
    active[tn] = true
  end
end
local seen = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #seen, 2 do
  local tn = seen[i]
  if tonumber(seen[i + 1]) >= now - window then
    active[tn] = true
  elseif not active[tn] then
    redis.call('ZREM', KEYS[3], tn)
    redis.call('HDEL', KEYS[4], tn)
  end
end
local weight, sum = {}, 0
for tn in pairs(active) do
  local w = tonumber(redis.call('HGET', KEYS[4], tn) or '1') or 1
  if w <= 0 then w = 1 end
  weight[tn] = w
  sum = sum + w
end
local mine = (inflight[tenant] or 0) / weight[tenant]
if total < slots then
  local first = true
  for tn, n in pairs(waiting) do
    if tn ~= tenant and n > 0 and (inflight[tn] or 0) / weight[tn] < mine then
      first = false
      break
    end
  end
  if first then
    redis.call('ZREM', KEYS[2], me)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[7]), me)
    return 1
  end
end
if (waiting[tenant] or 0) < room * weight[tenant] / sum then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[8]), me)
  return 0
end
redis.call('ZREM', KEYS[2], me)
return -1
`)

func (f *fair) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	tenant := f.task.TenantOf()
	w := 1.0
	if f.o.Share != nil {
		if s := f.o.Share(tenant); s > 0 {
			w = s
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	me := tenant + "\n" + id
	// A task whose earlier calls were let through is never deferred (it
	// would pay for them again): it waits, whatever the waiting room.
	patient := f.task.Started()
	room := f.o.Waiting
	if patient {
		room = math.MaxInt32
	}
	args := []any{tenant, id, strconv.FormatFloat(w, 'f', -1, 64), f.o.Slots, room,
		f.o.ActiveWindow.Milliseconds(), f.o.LeaseTTL.Milliseconds(), (3*f.o.Poll + time.Second).Milliseconds()}
	start := time.Now()
	for {
		st, err := acquireScript.Run(ctx, f.rdb, f.keys, args...).Int()
		if err != nil {
			f.leave(ctx, me)
			if ctx.Err() != nil {
				return llm.Response{}, f.waitErr(ctx.Err())
			}
			return llm.Response{}, &llm.Error{Provider: FairShareProvider, NotSent: true, Kind: llm.Retryable, Code: "redis", Err: fmt.Errorf("fair share: %w", err)}
		}
		if st == 1 {
			break
		}
		if st < 0 || (!patient && time.Since(start) >= f.o.MaxWait) {
			f.leave(ctx, me)
			if f.o.OnDefer != nil {
				f.o.OnDefer(tenant)
			}
			return llm.Response{}, &llm.Error{Provider: FairShareProvider, NotSent: true, Kind: llm.Retryable, RateLimited: true,
				Code: "fair_share", RetryAfter: f.o.Defer + mrand.N(f.o.Defer+1), Err: ErrDeferred}
		}
		t := time.NewTimer(f.o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.leave(ctx, me)
			return llm.Response{}, f.waitErr(ctx.Err())
		case <-t.C:
		}
	}
	llm.AddWait(ctx, time.Since(start)) // the slot's wait is not the model's latency
	f.task.MarkStarted()
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = f.rdb.ZRem(rctx, f.keys[0], me).Err() // else the lease expires
	}()
	return f.next.Complete(ctx, req)
}

// leave removes a waiter (best effort: it expires anyway).
func (f *fair) leave(ctx context.Context, me string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = f.rdb.ZRem(rctx, f.keys[1], me).Err()
}

func (f *fair) waitErr(err error) error {
	return &llm.Error{Provider: FairShareProvider, NotSent: true, Kind: llm.Retryable, RateLimited: true, RetryAfter: f.o.Defer,
		Err: fmt.Errorf("wait for a fair-share slot: %w", err)}
}
