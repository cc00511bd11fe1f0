package main

import (
	"context"
	"io"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest/schedule"
)

// watchOptions are the watch command's own flags (beside the batch flags).
type watchOptions = schedule.WatchSettings

func watchFlags(opts *watchOptions) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "the watch's name: its state, lease and batch IDs (<name>-<yyyymmdd>) derive from it; default: from the inbox and --out", Sources: env("WATCH_NAME"), Destination: &opts.Name},
		&cli.DurationFlag{Name: "interval", Usage: "how often the inbox is listed (default 1m, or 15m with --events)", Sources: env("WATCH_INTERVAL"), Destination: &opts.Interval},
		&cli.IntFlag{Name: "roll-every", Usage: "start a new batch after this many items (batches also roll at midnight)", Sources: env("WATCH_ROLL_EVERY"), Destination: &opts.RollEvery},
		&cli.StringFlag{Name: "timezone", Value: "UTC", Usage: "time zone in which days (and daily batches) begin", Sources: env("WATCH_TIMEZONE"), Destination: &opts.Timezone},
		&cli.DurationFlag{Name: "settle", Value: 10 * time.Second, Usage: "take a listed object only once it has been unmodified this long (a file still being copied waits)", Sources: env("WATCH_SETTLE"), Destination: &opts.Settle},
		&cli.StringFlag{Name: "events", Usage: "S3 event notifications to follow besides listing: redis://HOST:PORT/DB?key=LIST (MinIO's Redis target, format access) or an SQS queue URL https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE", Sources: env("WATCH_EVENTS"), Destination: &opts.Events},
		&cli.StringFlag{Name: "events-endpoint", Usage: "SQS endpoint override (an SQS-compatible server)", Sources: env("WATCH_EVENTS_ENDPOINT"), Destination: &opts.Endpoint},
	}
}

func watchCommand(stderr io.Writer) *cli.Command {
	var opts watchOptions
	return &cli.Command{
		Name:      "watch",
		Usage:     "process new and changed objects of an inbox as they land, into a rolling batch per day",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags:     concat(clix.Category(clix.CatBatch, batchFlags()), clix.Category("Watch", watchFlags(&opts)), clix.Category(clix.CatModel, append(clix.ProviderFlags(), promptFlag()))),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runWatch(ctx, cmd, opts, stderr)
		},
	}
}

// runWatch runs one watcher over the sources until ctx ends.
func runWatch(ctx context.Context, cmd *cli.Command, opts watchOptions, stderr io.Writer) error {
	in, c, o, done, err := ingestSetup(ctx, cmd, stderr)
	if err != nil {
		return err
	}
	defer done()
	return usageIf[*schedule.ConfigError](schedule.RunWatch(ctx, in, c.rdb, o, opts))
}
