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
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args, err := needArgs(cmd, "batch ID")
			if err != nil {
				return err
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			insp := asynq.NewInspector(c.opt)
			defer insp.Close()
			n, err := jobs.CancelBatch(ctx, c.tracker, insp, c.client(), args[0], time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s cancelled: %d queued items removed; running items stop at their next step\n", args[0], n)
			b, err := c.tracker.Get(ctx, args[0])
			if err != nil {
				return err
			}
			cnt, err := c.tracker.Counts(ctx, args[0])
			if err != nil {
				return err
			}
			printCounts(stdout, b, cnt)
			return nil
		},
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
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args, err := needArgs(cmd, "batch ID")
			if err != nil {
				return err
			}
			if !cmd.Bool("failed") && !cmd.Bool("cancelled") {
				return &exitError{code: exitUsage, msg: "retry: nothing to retry with --failed=false and without --cancelled"}
			}
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log}
			res, err := in.Retry(ctx, args[0], ingest.RetryOptions{Cancelled: cmd.Bool("cancelled"), Reason: cmd.String("reason")})
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s retries %d items of %s (%d queued, %d skipped)\n", res.BatchID, res.Total, args[0], res.Enqueued, res.Skipped)
			fmt.Fprintln(stdout, res.BatchID)
			return nil
		},
	}
}
