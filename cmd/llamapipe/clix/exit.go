package clix

import (
	"fmt"
	"strings"
)

// Exit statuses of llamapipe, as restic and rclone give them: 0 and 1 for
// the outcome, 2 for a command line that cannot be run, and a code of its
// own for a batch that never started.
const (
	// ExitOK: the command did what it was asked; every item ended done
	// or skipped.
	ExitOK = 0
	// ExitFailed: the command ran, and items failed, or it could not
	// finish (Redis, storage or the model stopped answering).
	ExitFailed = 1
	// ExitUsage: unknown command or flag, bad flag value, missing argument.
	ExitUsage = 2
	// ExitRefused: nothing was started: a source does not exist, or the
	// batch was refused before anything was queued (over the tenant's
	// budget).
	ExitRefused = 3
	// ExitCanceled: interrupted (SIGINT or SIGTERM).
	ExitCanceled = 130
)

// exitCodes is the table --help and the README show.
var exitCodes = []struct {
	code int
	what string
}{
	{ExitOK, "ok: every item done or skipped"},
	{ExitFailed, "items failed, or the command could not finish"},
	{ExitUsage, "usage error: unknown command or flag, bad value, missing argument"},
	{ExitRefused, "not started: a source does not exist, or the batch was refused (over budget)"},
	{ExitCanceled, "interrupted (SIGINT, SIGTERM)"},
}

// ExitCodesHelp is the exit-code table for the help text.
func ExitCodesHelp() string {
	var b strings.Builder
	b.WriteString("Exit status:")
	for _, c := range exitCodes {
		fmt.Fprintf(&b, "\n  %3d  %s", c.code, c.what)
	}
	return b.String()
}
