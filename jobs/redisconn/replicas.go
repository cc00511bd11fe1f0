package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated reports a write that a primary with replicas applied but
// no replica confirmed within the timeout: a failover now could lose it.
// It is retryable (the writes Replicated guards are idempotent).
var ErrNotReplicated = errors.New("redis: no replica confirmed the write")

// Replicated makes a write count only once a replica has it. Redis
// replicates asynchronously: a primary answers a write before its replicas
// have it, and when Sentinel (or Cluster) promotes a replica after the
// primary dies, the writes the replica had not received are gone, though
// their writers were told they succeeded. Pipelined sends WAIT 1 after the
// writes, on the same connection, when the key's primary has replicas;
// since replication is one ordered stream, a replica that confirms these
// writes has every write made before them too (asynq's included).
//
// The replica count of each primary is read from INFO replication and
// trusted for Recheck; a primary without replicas is written to as usual
// (WAIT 1 would block there until its timeout).
type Replicated struct {
	rdb redis.UniversalClient
	// Timeout bounds WAIT. Zero means 2s.
	Timeout time.Duration
	// Recheck is how long a primary's replica count is trusted. Zero means 5s.
	Recheck time.Duration

	mu    sync.Mutex
	known map[any]replicaCount
}

type replicaCount struct {
	n    int
	read time.Time
}

// NewReplicated returns a Replicated writing through rdb (a single Redis,
// a Sentinel-managed primary or a Cluster).
func NewReplicated(rdb redis.UniversalClient) *Replicated {
	return &Replicated{rdb: rdb, known: map[any]replicaCount{}}
}

// Pipelined runs fn's commands in one pipeline on the primary holding key
// (every key fn touches shares key's hash slot) and, when that primary has
// replicas, waits until one has them. It returns the first command error,
// or an error matching ErrNotReplicated when no replica confirmed in time.
func (r *Replicated) Pipelined(ctx context.Context, key string, fn func(p redis.Pipeliner)) error {
	var node redis.UniversalClient = r.rdb
	if cc, ok := r.rdb.(*redis.ClusterClient); ok {
		c, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return fmt.Errorf("redis: primary of %s: %w", key, err)
		}
		node = c
	}
	if r.replicas(ctx, node) == 0 {
		_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fn(p); return nil })
		return err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		fn(p)
		wait = p.Do(ctx, "WAIT", 1, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return err
	}
	if n, err := wait.Int64(); err != nil || n < 1 {
		r.forget(node) // the replica may be gone: read the count again
		return fmt.Errorf("%w within %s", ErrNotReplicated, timeout)
	}
	return nil
}

// replicas returns how many replicas node's primary has (0 when INFO
// cannot tell), read again once Recheck has passed.
func (r *Replicated) replicas(ctx context.Context, node redis.UniversalClient) int {
	recheck := r.Recheck
	if recheck <= 0 {
		recheck = 5 * time.Second
	}
	r.mu.Lock()
	c, ok := r.known[node]
	r.mu.Unlock()
	if ok && time.Since(c.read) < recheck {
		return c.n
	}
	c = replicaCount{read: time.Now()}
	if info, err := node.Info(ctx, "replication").Result(); err == nil {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
				c.n, _ = strconv.Atoi(v)
			}
		}
	}
	r.mu.Lock()
	r.known[node] = c
	r.mu.Unlock()
	return c.n
}

func (r *Replicated) forget(node redis.UniversalClient) {
	r.mu.Lock()
	delete(r.known, node)
	r.mu.Unlock()
}
