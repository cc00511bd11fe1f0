// Package lease is a Redis lease: one holder at a time for a named role
// (the scheduler that enqueues, the watcher of an inbox), with standbys that
// take over when the holder dies. It is SET NX with a TTL renewed by its
// holder through a compare-and-set script, so a holder that stalls past the
// TTL loses the lease instead of sharing it.
//
// It knows nothing of jobs or ingest; it lives under jobs/ because it is part
// of the Redis contract between llamapipe's processes.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Holder returns an ID naming this process: host, pid and a random part.
func Holder() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Acquire blocks until id holds the lease key (trying every ttl/3), then
// keeps it alive until ctx ends, when it is released. The returned channel
// is closed when the lease ends: ctx done, or the lease lost (another holder
// took it after this one failed to renew in time). what names the role in
// log lines ("scheduler", "watch inbox").
func Acquire(ctx context.Context, rdb redis.UniversalClient, key, id string, ttl time.Duration, what string, log *slog.Logger) (<-chan struct{}, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	waiting := false
	for {
		ok, err := rdb.SetNX(ctx, key, id, ttl).Result()
		if err == nil && ok {
			break
		}
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !waiting {
			log.Info("another "+what+" is running: standing by", "lock", key)
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ttl / 3):
		}
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				_ = releaseScript.Run(context.WithoutCancel(ctx), rdb, []string{key}, id).Err()
				return
			case <-t.C:
				n, err := renewScript.Run(ctx, rdb, []string{key}, id, ttl.Milliseconds()).Int()
				if err == nil && n == 0 {
					log.Error(what+" lock lost: stopping", "lock", key)
					return
				}
			}
		}
	}()
	return ch, nil
}

// TryAcquire takes the lease key for id if nobody holds it, for at most
// ttl, without waiting or renewing: for a short task that must not run
// beside another of its kind. ok reports whether it was taken; release
// gives it back (only if id still holds it).
func TryAcquire(ctx context.Context, rdb redis.UniversalClient, key, id string, ttl time.Duration) (release func(), ok bool, err error) {
	ok, err = rdb.SetNX(ctx, key, id, ttl).Result()
	if err != nil || !ok {
		return func() {}, false, err
	}
	return func() { _ = releaseScript.Run(context.WithoutCancel(ctx), rdb, []string{key}, id).Err() }, true, nil
}
