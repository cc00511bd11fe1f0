package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/schedule"
	"github.com/llamapipe/llamapipe/jobs/feed"
)

// schedulerOptions are the scheduler command's own flags.
type schedulerOptions struct {
	config       string
	syncInterval time.Duration
	check        bool
}

func schedulerCommand(stderr io.Writer) *cli.Command {
	var opts schedulerOptions
	return &cli.Command{
		Name:  "scheduler",
		Usage: "enqueue ingests on cron schedules (one scheduler runs; more wait as standbys)",
		// Provider flags: watch entries that name no model fingerprint their
		// results with the workers' (give the scheduler the same flags).
		Flags: concat(clix.ProviderFlags(), []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "schedules YAML file (re-read every --sync-interval)", Sources: env("SCHEDULES"), Required: true, Destination: &opts.config},
			&cli.DurationFlag{Name: "sync-interval", Value: time.Minute, Usage: "how often the schedules file is re-read", Sources: env("SCHEDULES_SYNC_INTERVAL"), Destination: &opts.syncInterval},
			&cli.BoolFlag{Name: "check", Usage: "only check the schedules file and list its entries", Sources: env("SCHEDULES_CHECK"), Destination: &opts.check},
			promptFlag(),
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runScheduler(ctx, cmd, opts, cmd.Root().Writer, stderr)
		},
	}
}

// runScheduler checks the schedules file (and with --check only lists it),
// then runs schedule.Run in the Redis of --redis-url.
func runScheduler(ctx context.Context, cmd *cli.Command, opts schedulerOptions, stdout, stderr io.Writer) error {
	sched, err := schedule.Parse(opts.config)
	if err != nil {
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	if opts.check {
		for _, c := range sched.Periodic {
			fmt.Fprintf(stdout, "%s\t%s\n", c.Cronspec, c.Task.Payload())
		}
		for _, w := range sched.Watches {
			fmt.Fprintf(stdout, "watch %s\t%s\n", w.Name, strings.Join(w.Payload.Sources, ","))
		}
		return nil
	}
	log, err := newLogger(cmd, stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	ps, err := loadPrompts(cmd)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cmd, false, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	err = schedule.Run(ctx, schedule.Config{
		Path: opts.config, SyncInterval: opts.syncInterval,
		Redis: c.opt, Client: c.rdb, Prompts: ps, Logger: log,
		Ingester: &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log, Feeds: feed.New(c.rdb, "")},
		Model: func() (string, string, error) {
			prof, err := plannedProfile(cmd)
			return prof.Provider, prof.Model, err
		},
	})
	return usageIf[*schedule.ConfigError](err)
}
