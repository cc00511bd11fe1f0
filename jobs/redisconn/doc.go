// Package redisconn turns the Redis URLs operators give (redis://,
// rediss://, redis-sentinel://, redis-cluster://) into asynq's and
// go-redis's connection options, dials and pings them without ever
// showing a password (RedactURL, URLError), and checks at start whether
// the Redis behind them may lose data (CheckDurability: AOF off, an
// eviction policy other than noeviction), and makes the writes that
// matter wait for a replica (Replicated: WAIT 1 on a primary that has
// replicas, so that a failover keeps what a replica confirmed).
//
// It knows Redis connections only: no keys (those are package jobs'), no
// batches, no ingest or worker.
package redisconn
