package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// statusOptions are the status command's flags.
type statusOptions struct {
	wait bool
}

func statusCommand(stdout, stderr io.Writer) *cli.Command {
	var opts statusOptions
	return &cli.Command{
		Name:      "status",
		Usage:     "show a batch's progress; with --wait, follow it to the end (exit status 1 if items failed)",
		ArgsUsage: "BATCH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "follow the batch until its manifest is written", Sources: env("WAIT"), Destination: &opts.wait},
			&cli.StringFlag{Name: "tenants", Usage: "tenants file: show what is left of the batch's tenant's budget (and count days in its timezone)", Sources: env("TENANTS")},
			clix.JSONFlag(),
		},
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			return runStatus(ctx, cmd, c, id, opts, stdout, stderr)
		}),
	}
}

// runStatus prints a batch's counts, webhook and tenant, or follows it.
func runStatus(ctx context.Context, cmd *cli.Command, c *conn, id string, opts statusOptions, stdout, stderr io.Writer) error {
	asJSON := cmd.Bool("json")
	if opts.wait {
		log, err := newLogger(cmd, stderr, slog.LevelInfo)
		if err != nil {
			return err
		}
		return followJSON(ctx, c, id, stdout, asJSON, ui.Follow(ctx, clix.Track(c.tracker, c.rdb), id, stdout, stderr, ui.FollowOptions{Log: log, Quiet: asJSON}))
	}
	if asJSON {
		return clix.PrintStatusJSON(ctx, stdout, clix.Track(c.tracker, c.rdb), id)
	}
	st, err := clix.ReadBatchStatus(ctx, clix.Track(c.tracker, c.rdb), id)
	if err != nil {
		return err
	}
	if err := ui.PrintStatus(ctx, stdout, c.tracker, st.Batch, st.Counts); err != nil {
		return err
	}
	clix.PrintProvidersDown(stdout, st.ProvidersDown)
	return printTenant(ctx, stdout, cmd, c, st.Batch)
}

// onBatch is the action of a command that works on one batch (its only
// argument) in the Redis that --redis-url names.
func onBatch(stderr io.Writer, fn func(ctx context.Context, cmd *cli.Command, c *conn, id string) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		args, err := needArgs(cmd, "batch ID")
		if err != nil {
			return err
		}
		c, err := connect(ctx, cmd, false, stderr)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(ctx, cmd, c, args[0])
	}
}

// printTenant shows a batch's tenant with its spend today and this month
// (and what is left of its budget, with --tenants).
func printTenant(ctx context.Context, w io.Writer, cmd *cli.Command, c *conn, b jobs.Batch) error {
	if b.Tenant == "" {
		return nil
	}
	budgets, err := openTenants(cmd, c, nil)
	if err != nil {
		return err
	}
	if budgets == nil {
		budgets = &tenants.Budgets{File: tenants.Static(nil), Ledger: tenants.NewLedger(c.rdb, "")}
	}
	st, err := budgets.Status(ctx, b.Tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "tenant %s\n", st.Summary(""))
	return nil
}

// followJSON ends a follow: with --json it prints the batch's status,
// then maps the follow's error.
func followJSON(ctx context.Context, c *conn, id string, stdout io.Writer, asJSON bool, err error) error {
	if asJSON {
		if jerr := clix.PrintStatusJSON(ctx, stdout, clix.Track(c.tracker, c.rdb), id); jerr != nil {
			return jerr
		}
	}
	return followed(err)
}

// followed maps ui.Follow's ErrReported to exit status 1 without repeating
// the reason.
func followed(err error) error {
	if errors.Is(err, ui.ErrReported) {
		return &exitError{code: exitFailed}
	}
	return err
}
