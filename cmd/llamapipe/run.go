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
	"github.com/llamapipe/llamapipe/worker/llm"
)

func runCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "ingest sources, process them with in-process workers and wait: the all-in-one path for one machine",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags: concat(clix.Category(clix.CatBatch, batchFlags()), clix.Category(clix.CatWorker, workerFlags()),
			clix.Category(clix.CatModel, append(clix.ProviderFlags(), promptFlag())), clix.Category(clix.CatTenancy, []cli.Flag{tenantsFlag()}), []cli.Flag{clix.JSONFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runRun(ctx, cmd, stdout, stderr)
		},
	}
}

// runRun starts in-process workers, ingests the sources and follows the
// batch to its manifest.
func runRun(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer) error {
	sources, err := needArgs(cmd, "source")
	if err != nil {
		return err
	}
	// The progress display says what matters; logs only for errors
	// unless --log-level asks for more.
	log, err := newLogger(cmd, stderr, slog.LevelError)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cmd, true, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	w, model, err := newWorker(ctx, cmd, c, log, func(m llm.Client) error {
		return checkTaskForModel(cmd.String("task"), m.Profile())
	})
	if err != nil {
		return err
	}
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	defer func() {
		stopWorkers()
		<-werr
	}()

	in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log, Feeds: feed.New(c.rdb, "")}
	o, err := batchOptions(cmd, batchSpec(cmd, sources, model.Profile()), model.Profile())
	if err != nil {
		return err
	}
	if err := checkDocuments(ctx, in, o); err != nil {
		return err
	}
	if err := checkBudget(ctx, cmd, c, in, o, model.Profile(), log); err != nil {
		return err
	}
	res, err := in.Run(ctx, o)
	if err != nil {
		return err
	}
	ui.Say(ctx, stderr, log, fmt.Sprintf("batch %s: %d items (%d queued, %d skipped)", res.BatchID, res.Total, res.Enqueued, res.Skipped), "batch_id", res.BatchID)
	asJSON := cmd.Bool("json")
	return followJSON(ctx, c, res.BatchID, stdout, asJSON, ui.Follow(ctx, clix.Track(c.tracker, c.rdb), res.BatchID, stdout, stderr, ui.FollowOptions{Started: true, Log: log, Quiet: asJSON}))
}
