package clix

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v3"
)

// UsageError is a command line that cannot be run (exit status 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// JSONFlag is --json of the commands that print JSON (shapes in this
// package).
func JSONFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON on standard output instead of text (shapes in the README)", Category: CatOutput}
}

// VersionCommand is `llamapipe version`: the build info (ReadVersion).
func VersionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version: module version, VCS commit and Go version (also --version)",
		Flags: []cli.Flag{JSONFlag()},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			v := ReadVersion()
			if cmd.Bool("json") {
				return WriteJSON(stdout, v)
			}
			_, err := fmt.Fprintf(stdout, "llamapipe version %s\n", v)
			return err
		},
	}
}

// BatchesCommand is `llamapipe batches`: open reaches the batch records
// (and returns how to close them).
func BatchesCommand(stdout io.Writer, open func(ctx context.Context, cmd *cli.Command) (Lister, func(), error)) *cli.Command {
	return &cli.Command{
		Name:  "batches",
		Usage: "list batches, newest first, with their state and counts",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "only batches in this state: listing, running, cancelling, finalizing, finished, cancelled or stopped", Sources: cli.EnvVars("LLAMAPIPE_BATCHES_STATE")},
			&cli.StringFlag{Name: "tenant", Usage: "only this tenant's batches", Sources: cli.EnvVars("LLAMAPIPE_BATCHES_TENANT")},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "at most this many batches (0: all)", Sources: cli.EnvVars("LLAMAPIPE_BATCHES_LIMIT")},
			JSONFlag(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			f := BatchFilter{Tenant: cmd.String("tenant"), State: cmd.String("state"), Limit: cmd.Int("limit")}
			if err := f.Validate(); err != nil {
				return &UsageError{Msg: err.Error()}
			}
			l, done, err := open(ctx, cmd)
			if err != nil {
				return err
			}
			defer done()
			bs, err := ListBatches(ctx, l, f)
			if err != nil {
				return err
			}
			if cmd.Bool("json") {
				return WriteJSON(stdout, bs)
			}
			return PrintBatches(stdout, bs)
		},
	}
}

// UsageErrors gives every command below cmd the handler fn of usage errors
// (exit status 2), as urfave/cli asks each command for its own.
func UsageErrors(cmd *cli.Command, fn cli.OnUsageErrorFunc) {
	for _, c := range cmd.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = fn
		}
		UsageErrors(c, fn)
	}
}

// PrintStatusJSON prints a batch's status as --json does (after a follow
// that was not interrupted: ctx still live).
func PrintStatusJSON(ctx context.Context, w io.Writer, t StatusReader, id string) error {
	if ctx.Err() != nil {
		return nil
	}
	st, err := ReadBatchStatus(ctx, t, id)
	if err != nil {
		return err
	}
	return WriteJSON(w, st)
}

// PrintCancelledJSON prints what cancel --json does: the batch's status and
// how many queued items the cancel removed.
func PrintCancelledJSON(ctx context.Context, w io.Writer, t StatusReader, id string, removed int) error {
	st, err := ReadBatchStatus(ctx, t, id)
	if err != nil {
		return err
	}
	return WriteJSON(w, Cancelled{BatchStatus: st, Removed: removed})
}
