package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs/feed"
)

// retryOptions are the retry command's flags.
type retryOptions struct {
	failed bool
	ingest.RetryOptions
}

func retryCommand(stdout, stderr io.Writer) *cli.Command {
	var opts retryOptions
	return &cli.Command{
		Name:      "retry",
		Usage:     "make a new batch of a batch's failed items (results already written are kept); prints the new batch's ID",
		ArgsUsage: "BATCH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "failed", Value: true, Usage: "retry the failed items (the default)", Sources: env("RETRY_FAILED"), Destination: &opts.failed},
			&cli.BoolFlag{Name: "cancelled", Usage: "also retry items that ended as cancelled", Sources: env("RETRY_CANCELLED"), Destination: &opts.Cancelled},
			&cli.StringFlag{Name: "reason", Usage: "only items whose reason contains this text (any case)", Sources: env("RETRY_REASON"), Destination: &opts.Reason},
			clix.JSONFlag(),
		},
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			return runRetry(ctx, cmd, c, id, opts, stdout, stderr)
		}),
	}
}

// runRetry makes the new batch with ingest's Retry and prints its ID.
func runRetry(ctx context.Context, cmd *cli.Command, c *conn, id string, opts retryOptions, stdout, stderr io.Writer) error {
	if !opts.failed && !opts.Cancelled {
		return &exitError{code: exitUsage, msg: "retry: nothing to retry with --failed=false and without --cancelled"}
	}
	log, err := newLogger(cmd, stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log, Feeds: feed.New(c.rdb, "")}
	res, err := in.Retry(ctx, id, opts.RetryOptions)
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
		return clix.WriteJSON(stdout, clix.Started{BatchID: res.BatchID, Total: res.Total, Queued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds, RetryOf: id})
	}
	ui.Say(ctx, stderr, log, fmt.Sprintf("batch %s retries %d items of %s (%d queued, %d skipped)", res.BatchID, res.Total, id, res.Enqueued, res.Skipped), "batch_id", res.BatchID, "retry_of", id)
	fmt.Fprintln(stdout, res.BatchID)
	return nil
}
