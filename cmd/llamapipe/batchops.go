package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
)

func cancelCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel a batch: queued items are removed, running ones stop at their next step; the manifest marks them cancelled",
		ArgsUsage: "BATCH",
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			insp := asynq.NewInspector(c.opt)
			defer insp.Close()
			n, err := jobs.CancelBatch(ctx, c.tracker, insp, c.client(), id, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s cancelled: %d queued items removed; running items stop at their next step\n", id, n)
			b, err := c.tracker.Get(ctx, id)
			if err != nil {
				return err
			}
			cnt, err := c.tracker.Counts(ctx, id)
			if err != nil {
				return err
			}
			return printStatus(ctx, stdout, c.tracker, b, cnt)
		}),
	}
}

func retryCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "make a new batch of a batch's failed items (results already written are kept); prints the new batch's ID",
		ArgsUsage: "BATCH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "failed", Value: true, Usage: "retry the failed items (the default)", Sources: env("RETRY_FAILED")},
			&cli.BoolFlag{Name: "cancelled", Usage: "also retry items that ended as cancelled", Sources: env("RETRY_CANCELLED")},
			&cli.StringFlag{Name: "reason", Usage: "only items whose reason contains this text (any case)", Sources: env("RETRY_REASON")},
		},
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			if !cmd.Bool("failed") && !cmd.Bool("cancelled") {
				return &exitError{code: exitUsage, msg: "retry: nothing to retry with --failed=false and without --cancelled"}
			}
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log}
			res, err := in.Retry(ctx, id, ingest.RetryOptions{Cancelled: cmd.Bool("cancelled"), Reason: cmd.String("reason")})
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s retries %d items of %s (%d queued, %d skipped)\n", res.BatchID, res.Total, id, res.Enqueued, res.Skipped)
			fmt.Fprintln(stdout, res.BatchID)
			return nil
		}),
	}
}
