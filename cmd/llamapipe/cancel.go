package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/ingest/cancel"
)

func cancelCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel a batch: queued items are removed, running ones stop at their next step; the manifest marks them cancelled",
		ArgsUsage: "BATCH",
		Flags:     []cli.Flag{clix.JSONFlag()},
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			return runCancel(ctx, cmd, c, id, stdout, stderr)
		}),
	}
}

// runCancel cancels a batch with cancel.Batch and prints its status.
func runCancel(ctx context.Context, cmd *cli.Command, c *conn, id string, stdout, stderr io.Writer) error {
	insp := asynq.NewInspector(c.opt)
	defer insp.Close()
	n, err := cancel.Batch(ctx, c.tracker, insp, c.client(), id, time.Now())
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
		return clix.PrintCancelledJSON(ctx, stdout, clix.Track(c.tracker, c.rdb), id, n)
	}
	log, err := newLogger(cmd, stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	ui.Say(ctx, stderr, log, fmt.Sprintf("batch %s cancelled: %d queued items removed; running items stop at their next step", id, n), "batch_id", id, "removed", n)
	st, err := clix.ReadBatchStatus(ctx, c.tracker, id)
	if err != nil {
		return err
	}
	return ui.PrintStatus(ctx, stdout, c.tracker, st.Batch, st.Counts)
}
