package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/localredis"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/storage/s3store"
)

// conn is the process's Redis: the asynq connection option and a client for
// batch records, made from the same URL.
type conn struct {
	opt     asynq.RedisConnOpt
	rdb     redis.UniversalClient
	tracker *jobs.Tracker
	stop    func()
	enq     *asynq.Client
}

// client is the process's asynq client, made on first use.
func (c *conn) client() *asynq.Client {
	if c.enq == nil {
		c.enq = asynq.NewClient(c.opt)
	}
	return c.enq
}

func (c *conn) Close() {
	if c.enq != nil {
		_ = c.enq.Close()
	}
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
	if c.stop != nil {
		c.stop()
	}
}

// connect opens the Redis named by --redis-url. When it is empty and private
// is true, it starts a private redis-server for this process (the
// single-machine `run`).
func connect(ctx context.Context, cmd *cli.Command, private bool, stderr io.Writer) (*conn, error) {
	c := &conn{}
	url := cmd.String("redis-url")
	if url == "" {
		if !private {
			return nil, &exitError{code: exitUsage, msg: "no Redis: set --redis-url or LLAMAPIPE_REDIS_URL (e.g. redis://localhost:6379/0)"}
		}
		srv, err := localredis.Start(ctx)
		if errors.Is(err, localredis.ErrNoServer) {
			return nil, &exitError{code: exitFailed, msg: "no --redis-url given and no redis-server on PATH: install Redis (Debian: apt-get install redis-server) or point --redis-url at one"}
		} else if err != nil {
			return nil, err
		}
		ui.Say(ctx, stderr, nil, fmt.Sprintf("started a private redis-server on %s for this run", srv.Addr))
		url, c.stop = srv.URL, srv.Stop
	}
	var err error
	if c.opt, c.rdb, err = redisconn.Dial(ctx, url); err != nil {
		c.Close()
		if ue := (*redisconn.URLError)(nil); errors.As(err, &ue) {
			return nil, &exitError{code: exitUsage, msg: "--redis-url: " + err.Error()}
		}
		return nil, err
	}
	c.tracker = jobs.NewTracker(c.rdb, "")
	c.tracker.SetPages(opener(cmd)) // spilled entries (jobs/spill)
	return c, nil
}

// opener returns the storage opener configured by the global flags.
func opener(cmd *cli.Command) func(ctx context.Context, location string) (storage.Store, error) {
	cfg := backends.Config{S3: s3store.Config{
		Endpoint:  cmd.String("s3-endpoint"),
		Region:    cmd.String("s3-region"),
		PathStyle: cmd.Bool("s3-path-style"),
	}}
	return func(ctx context.Context, location string) (storage.Store, error) {
		return backends.Open(ctx, location, cfg)
	}
}
