package schedule

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/watch"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
)

// WatchSettings are a watch's own options (beside the batch options).
type WatchSettings struct {
	// Name is the watch's name: its state, lease and batch IDs derive from
	// it. Empty means one derived from the sources and the output.
	Name string
	// Interval is how often the inbox is listed. Zero means 1m, or 15m with
	// Events.
	Interval time.Duration
	// RollEvery starts a new batch after this many items. Zero means only
	// at midnight.
	RollEvery int
	// Timezone is where days (and daily batches) begin. Required.
	Timezone string
	// Settle is how long a listed object must be unmodified to be taken.
	Settle time.Duration
	// Events are S3 event notifications to follow besides listing:
	// redis://HOST:PORT/DB?key=LIST or an SQS queue URL. Empty: none.
	Events string
	// Endpoint overrides the SQS endpoint.
	Endpoint string
}

// RunWatch runs one watcher of o's sources until ctx ends: the watch
// command, and each watch entry under the scheduler. Bad settings are a
// *ConfigError; rdb holds the watch's state and lease.
func RunWatch(ctx context.Context, in *ingest.Ingester, rdb redis.UniversalClient, o ingest.Options, ws WatchSettings) error {
	w, src, err := newWatcher(ctx, in, rdb, o, ws)
	if err != nil {
		return err
	}
	if closer, ok := src.(interface{ Close() error }); ok {
		defer closer.Close()
	}
	return w.Run(ctx, src)
}

func newWatcher(ctx context.Context, in *ingest.Ingester, rdb redis.UniversalClient, o ingest.Options, ws WatchSettings) (*watch.Watcher, watch.EventSource, error) {
	if o.Out == "" {
		return nil, nil, configErrorf("watch: no output location given (--out)")
	}
	loc, err := time.LoadLocation(ws.Timezone)
	if err != nil {
		return nil, nil, configErrorf("--timezone %q: %v", ws.Timezone, err)
	}
	if ws.RollEvery < 0 {
		return nil, nil, configErrorf("--roll-every must not be negative")
	}
	feed, err := in.NewFeed(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	name := ws.Name
	if name == "" {
		name = watch.DefaultName(feed.Sources(), feed.Out())
	}
	if !watch.ValidName(name) {
		return nil, nil, configErrorf("--name %q: use letters, digits, '-', '_' and '.'", name)
	}
	var src watch.EventSource
	if ws.Events != "" {
		if src, err = eventSource(ctx, ws.Events, ws.Endpoint); err != nil {
			return nil, nil, err
		}
	}
	interval := ws.Interval
	if interval == 0 {
		interval = time.Minute
		if src != nil {
			interval = 15 * time.Minute // events carry the load; listing catches what they lose
		}
	}
	w, err := watch.New(watch.Config{Name: name, Feed: feed, Redis: rdb, Interval: interval, RollEvery: ws.RollEvery,
		Location: loc, Settle: ws.Settle, Logger: in.Logger})
	if err != nil {
		return nil, nil, err
	}
	return w, src, nil
}

// redisEvents is a Redis event list with its own client.
type redisEvents struct {
	*watch.RedisList
}

func (r redisEvents) Close() error { return r.Client.Close() }

// eventSource opens the events setting: a Redis list MinIO writes to, or an
// SQS queue.
func eventSource(ctx context.Context, spec, endpoint string) (watch.EventSource, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return nil, configErrorf("--events: %v", redisconn.RedactURL(err.Error(), spec))
	}
	switch u.Scheme {
	case "redis", "rediss":
		key := u.Query().Get("key")
		if key == "" {
			return nil, configErrorf("--events: give the list MinIO writes to as ?key=LIST")
		}
		q := u.Query()
		q.Del("key")
		u.RawQuery = q.Encode()
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, configErrorf("--events: %v", redisconn.RedactURL(err.Error(), spec))
		}
		return redisEvents{&watch.RedisList{Client: redis.NewClient(opt), Key: key}}, nil
	case "https", "http":
		if !strings.HasPrefix(u.Hostname(), "sqs.") && endpoint == "" {
			return nil, configErrorf("--events: an https URL must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)")
		}
		return watch.NewSQS(ctx, spec, watch.SQSOptions{Endpoint: endpoint})
	}
	return nil, configErrorf("--events: use redis://HOST:PORT/DB?key=LIST (MinIO) or an SQS queue URL")
}
