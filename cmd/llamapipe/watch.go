package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/watch"
	"github.com/llamapipe/llamapipe/jobs"
)

func watchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "the watch's name: its state, lease and batch IDs (<name>-<yyyymmdd>) derive from it; default: from the inbox and --out", Sources: env("WATCH_NAME")},
		&cli.DurationFlag{Name: "interval", Usage: "how often the inbox is listed (default 1m, or 15m with --events)", Sources: env("WATCH_INTERVAL")},
		&cli.IntFlag{Name: "roll-every", Usage: "start a new batch after this many items (batches also roll at midnight)", Sources: env("WATCH_ROLL_EVERY")},
		&cli.StringFlag{Name: "timezone", Value: "UTC", Usage: "time zone in which days (and daily batches) begin", Sources: env("WATCH_TIMEZONE")},
		&cli.DurationFlag{Name: "settle", Value: 10 * time.Second, Usage: "take a listed object only once it has been unmodified this long (a file still being copied waits)", Sources: env("WATCH_SETTLE")},
		&cli.StringFlag{Name: "events", Usage: "S3 event notifications to follow besides listing: redis://HOST:PORT/DB?key=LIST (MinIO's Redis target, format access) or an SQS queue URL https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE", Sources: env("WATCH_EVENTS")},
		&cli.StringFlag{Name: "events-endpoint", Usage: "SQS endpoint override (an SQS-compatible server)", Sources: env("WATCH_EVENTS_ENDPOINT")},
	}
}

// watchSettings are a watch's own options (beside the batch options).
type watchSettings struct {
	Name      string
	Interval  time.Duration
	RollEvery int
	Timezone  string
	Settle    time.Duration
	Events    string
	Endpoint  string
}

func watchCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "process new and changed objects of an inbox as they land, into a rolling batch per day",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags:     concat(batchFlags(), watchFlags(), providerFlags(), []cli.Flag{promptFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			in, c, o, done, err := ingestSetup(ctx, cmd, stderr)
			if err != nil {
				return err
			}
			defer done()
			ws := watchSettings{Name: cmd.String("name"), Interval: cmd.Duration("interval"), RollEvery: cmd.Int("roll-every"),
				Timezone: cmd.String("timezone"), Settle: cmd.Duration("settle"), Events: cmd.String("events"), Endpoint: cmd.String("events-endpoint")}
			return runWatch(ctx, in, c.rdb, o, ws, in.Logger)
		},
	}
}

// runWatch runs one watcher until ctx ends (the watch command, and the
// scheduler's watch entries).
func runWatch(ctx context.Context, in *ingest.Ingester, rdb redis.UniversalClient, o ingest.Options, ws watchSettings, log *slog.Logger) error {
	w, src, err := newWatcher(ctx, in, rdb, o, ws, log)
	if err != nil {
		return err
	}
	if closer, ok := src.(interface{ Close() error }); ok {
		defer closer.Close()
	}
	err = w.Run(ctx, src)
	if errors.Is(err, watch.ErrLeaseLost) {
		return &exitError{code: 1, msg: err.Error()}
	}
	return err
}

func newWatcher(ctx context.Context, in *ingest.Ingester, rdb redis.UniversalClient, o ingest.Options, ws watchSettings, log *slog.Logger) (*watch.Watcher, watch.EventSource, error) {
	if o.Out == "" {
		return nil, nil, &exitError{code: exitUsage, msg: "watch: no output location given (--out)"}
	}
	loc, err := time.LoadLocation(ws.Timezone)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--timezone %q: %v", ws.Timezone, err)}
	}
	if ws.RollEvery < 0 {
		return nil, nil, &exitError{code: exitUsage, msg: "--roll-every must not be negative"}
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
		return nil, nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--name %q: use letters, digits, '-', '_' and '.'", name)}
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
		Location: loc, Settle: ws.Settle, Logger: log})
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

// eventSource opens --events: a Redis list MinIO writes to, or an SQS queue.
func eventSource(ctx context.Context, spec, endpoint string) (watch.EventSource, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--events: %v", jobs.RedactURL(err.Error(), spec))}
	}
	switch u.Scheme {
	case "redis", "rediss":
		key := u.Query().Get("key")
		if key == "" {
			return nil, &exitError{code: exitUsage, msg: "--events: give the list MinIO writes to as ?key=LIST"}
		}
		q := u.Query()
		q.Del("key")
		u.RawQuery = q.Encode()
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--events: %v", jobs.RedactURL(err.Error(), spec))}
		}
		return redisEvents{&watch.RedisList{Client: redis.NewClient(opt), Key: key}}, nil
	case "https", "http":
		if !strings.HasPrefix(u.Hostname(), "sqs.") && endpoint == "" {
			return nil, &exitError{code: exitUsage, msg: "--events: an https URL must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"}
		}
		return watch.NewSQS(ctx, spec, watch.SQSOptions{Endpoint: endpoint})
	}
	return nil, &exitError{code: exitUsage, msg: "--events: use redis://HOST:PORT/DB?key=LIST (MinIO) or an SQS queue URL"}
}
