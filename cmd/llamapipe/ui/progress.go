package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
)

// Tracker is what the display reads of a batch record (a *jobs.Tracker).
type Tracker interface {
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	WebhookState(ctx context.Context, batch string) (jobs.WebhookState, bool, error)
}

var _ Tracker = (*jobs.Tracker)(nil)

// downReader is what Follow reads of the providers down when its Tracker
// has it (clix.Tracked).
type downReader interface {
	ProvidersDown(ctx context.Context, b jobs.Batch) ([]outage.Down, error)
}

// downLines says which providers are down ("" for none).
func downLines(ds []outage.Down) string {
	var sb strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&sb, "provider down: %s (%s) until %s: %s; fallback chains skip it until then\n",
			d.Provider, d.Model, d.Until.UTC().Format(time.DateTime+" MST"), d.Reason)
	}
	return sb.String()
}

// ErrReported is Follow's failure when the batch stopped for a reason it
// has already shown (a fatal error such as a refused API key).
var ErrReported = errors.New("batch stopped (reason shown above)")

// FollowOptions tune Follow.
type FollowOptions struct {
	// Started says this process queued the batch: on ctx's end Follow
	// says how to follow the batch again.
	Started bool
	// Log gets the progress lines when stderr is not a terminal (nil:
	// none), so they never mix with JSON logs as plain lines.
	Log *slog.Logger
	// Quiet leaves stdout to the caller (--json prints the final status).
	Quiet bool
}

// Follow shows a batch's progress until its manifest is written: a progress
// bar on a terminal, log records otherwise. It prints where the manifest and
// report are, and fails when items failed (ErrReported when the reason was
// shown already).
func Follow(ctx context.Context, t Tracker, batch string, stdout, stderr io.Writer, o FollowOptions) error {
	b, err := t.Get(ctx, batch)
	if err != nil {
		return err
	}
	tty := IsTerminal(stderr)
	fatalOut := stderr
	if !tty {
		stderr = LogWriter(ctx, o.Log, slog.LevelInfo, "batch_id", batch)
		fatalOut = LogWriter(ctx, o.Log, slog.LevelError, "batch_id", batch)
	}
	if o.Quiet {
		stdout = io.Discard
	}
	var bar *progressbar.ProgressBar
	if tty {
		bar = progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("batch "+batch),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	var last, warned, down string
	lastLine, downAt := time.Time{}, time.Time{}
	fatalShown := false
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := t.Counts(ctx, batch)
		if errors.Is(err, jobs.ErrNoBatch) && jobs.Gone(err) == nil {
			// The record was there (Get) and vanished with its tombstone
			// (Redis lost its data): lost, not a batch to wait for.
			err = &jobs.GoneError{ID: batch, State: jobs.StateLost, Tenant: b.Tenant}
		}
		if err != nil {
			return err
		}
		if c.Fatal != "" && !fatalShown {
			fatalShown = true
			if bar != nil {
				_ = bar.Clear()
			}
			fmt.Fprintf(fatalOut, "llamapipe: %s\n", c.Fatal)
		}
		if c.Warning != warned {
			warned = c.Warning
			if warned != "" {
				fmt.Fprintf(stderr, "llamapipe: warning: %s\n", warned)
			}
		}
		if dr, ok := t.(downReader); ok && !c.Finalized && time.Since(downAt) >= 2*time.Second {
			downAt = time.Now()
			if ds, err := dr.ProvidersDown(ctx, b); err == nil && downLines(ds) != down {
				if down = downLines(ds); down == "" {
					fmt.Fprintln(stderr, "llamapipe: no provider of the batch is down any more")
				}
				for _, l := range strings.SplitAfter(down, "\n") {
					if l != "" {
						fmt.Fprint(stderr, "llamapipe: "+l)
					}
				}
			}
		}
		if bar != nil {
			if c.Sealed && bar.GetMax() != c.Total {
				bar.ChangeMax(c.Total)
			}
			_ = bar.Set(c.Ended())
			bar.Describe(fmt.Sprintf("batch %s: %d done, %d failed, %d skipped%s", batch, c.Done, c.Failed, c.Skipped, costNote(c)))
		} else if line := progressLine(c); line != last && (time.Since(lastLine) >= 2*time.Second || c.Finalized) {
			fmt.Fprintf(stderr, "llamapipe: batch %s: %s\n", batch, line)
			lastLine = time.Now()
			last = line
		}
		if c.Finalized {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(stderr)
			}
			printCounts(stderr, b, c, fatalShown) // the reason was said once above

			out := strings.TrimRight(b.Out, "/")
			fmt.Fprintf(stdout, "manifest: %s/%s\nreport:   %s/%s\n", out, b.ManifestPath(), out, b.ReportPath())
			if b.Webhook != "" { // its outcome is a result: on stdout with the manifest
				waitWebhook(ctx, t, b, webhookWait, stdout)
			}
			switch {
			case fatalShown:
				return ErrReported
			case c.Failed > 0:
				return fmt.Errorf("%d of %d items failed: reasons in %s/%s", c.Failed, c.Total, out, b.ReportPath())
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if o.Started {
				fmt.Fprintf(stderr, "llamapipe: stopped following batch %s; queued items stay queued (follow with: llamapipe status %s --wait)\n", batch, batch)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func printCounts(w io.Writer, b jobs.Batch, c jobs.Counts, fatalSaid bool) {
	state := c.State()
	total := fmt.Sprint(c.Total)
	if !c.Sealed {
		total = "?"
	}
	fmt.Fprintf(w, "batch %s (%s): %s items: %d done, %d failed, %d skipped", b.ID, state, total, c.Done, c.Failed, c.Skipped)
	if c.Cancelled > 0 {
		fmt.Fprintf(w, ", %d cancelled", c.Cancelled)
	}
	fmt.Fprintf(w, "; %d input / %d output tokens", c.InputTokens, c.OutputTokens)
	fmt.Fprint(w, costNote(c))
	fmt.Fprintln(w)
	if b.RetryOf != "" {
		fmt.Fprintf(w, "retries the failed items of batch %s\n", b.RetryOf)
	}
	if c.Fatal != "" && !fatalSaid {
		fmt.Fprintf(w, "stopped: %s\n", c.Fatal)
	}
	if c.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", c.Warning)
	}
}

// progressLine is the batch's progress for a log line.
func progressLine(c jobs.Counts) string {
	total := "?"
	if c.Sealed {
		total = fmt.Sprint(c.Total)
	}
	return fmt.Sprintf("%d/%s ended (%d done, %d failed, %d skipped%s)", c.Ended(), total, c.Done, c.Failed, c.Skipped, costNote(c))
}

// costNote is "; cost 0.1234 USD" (each currency's), or "" before any
// cost was recorded.
func costNote(c jobs.Counts) string {
	if c.Cost == 0 && len(c.Costs) == 0 {
		return ""
	}
	return "; cost " + c.CostText()
}

// webhookWait is how long follow waits, after the manifest, for the
// completion webhook's first answer (the workers keep retrying after).
const webhookWait = 30 * time.Second

// waitWebhook waits until the batch's webhook was delivered or failed for
// good, or for at most d, and says how it went.
func waitWebhook(ctx context.Context, t Tracker, b jobs.Batch, d time.Duration, w io.Writer) {
	deadline := time.Now().Add(d)
	for {
		st, ok, err := t.WebhookState(ctx, b.ID)
		if err == nil && ok && st.Status != jobs.WebhookPending {
			printWebhook(w, b, st, true)
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(w, "webhook: not delivered yet (%d attempts); the workers keep retrying (see llamapipe status %s)\n", st.Attempts, b.ID)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printWebhook says where a batch's completion webhook stands.
func printWebhook(w io.Writer, b jobs.Batch, st jobs.WebhookState, known bool) {
	if b.Webhook == "" {
		return
	}
	if !known {
		fmt.Fprintf(w, "webhook: %s (not called yet)\n", b.Webhook)
		return
	}
	fmt.Fprintf(w, "webhook: %s %s after %d attempt(s)", b.Webhook, st.Status, st.Attempts)
	if st.LastStatus != 0 {
		fmt.Fprintf(w, ", last answer HTTP %d", st.LastStatus)
	}
	if st.LastError != "" && st.Status != jobs.WebhookDelivered {
		fmt.Fprintf(w, ": %s", st.LastError)
	}
	fmt.Fprintln(w)
}

// PrintStatus prints a batch's counts and its webhook's state.
func PrintStatus(ctx context.Context, w io.Writer, t Tracker, b jobs.Batch, c jobs.Counts) error {
	printCounts(w, b, c, false)
	if b.Webhook == "" {
		return nil
	}
	st, ok, err := t.WebhookState(ctx, b.ID)
	if err != nil {
		return err
	}
	printWebhook(w, b, st, ok)
	return nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
