package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
)

// RetryOptions choose which items of a batch to retry.
type RetryOptions struct {
	// Cancelled also retries items that ended as cancelled.
	Cancelled bool
	// Reason keeps only items whose reason contains this text (any case).
	Reason string
	// BatchID names the new batch (else a new ID is made).
	BatchID string
}

// Retry makes a new batch of the failed items of an old one, linked to it
// (Batch.RetryOf), with the old batch's task, output and options. Results
// the old batch wrote are kept and not paid for again: only failed items are
// queued. It returns the new batch's result; a batch with nothing to retry
// is an error that says so.
func (in *Ingester) Retry(ctx context.Context, old string, ro RetryOptions) (Result, error) {
	b, err := in.Tracker.Get(ctx, old)
	if err != nil {
		return Result{}, err
	}
	entries, err := in.Tracker.Entries(ctx, old)
	if err != nil {
		return Result{}, err
	}
	var items []ItemRef
	for _, e := range entries {
		want := e.Status == jobs.StatusFailed || (ro.Cancelled && e.Status == jobs.StatusCancelled)
		if !want || (ro.Reason != "" && !strings.Contains(strings.ToLower(e.Error), strings.ToLower(ro.Reason))) {
			continue
		}
		if e.Key == "" || !strings.HasSuffix(e.Source, "/"+e.Key) {
			return Result{}, fmt.Errorf("retry %s: entry %s does not say its key (batch made by an older llamapipe?)", old, e.Source)
		}
		items = append(items, ItemRef{Location: strings.TrimSuffix(e.Source, "/"+e.Key), Key: e.Key, ResultBase: e.ResultBase})
	}
	if len(items) == 0 {
		return Result{}, fmt.Errorf("retry %s: no failed items%s to retry", old, map[bool]string{true: " matching " + fmt.Sprintf("%q", ro.Reason)}[ro.Reason != ""])
	}
	// The new batch is made as the old one was; it is told to no webhook
	// and lists nothing (Include and Exclude apply to listing).
	spec := b.Spec
	spec.Include, spec.Exclude, spec.Webhook, spec.Force = nil, nil, "", false
	return in.Run(ctx, Options{Spec: spec, Items: items, RetryOf: old, BatchID: ro.BatchID})
}
