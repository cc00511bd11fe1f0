package ingest

import (
	"context"
	"errors"
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

// Wants reports whether an entry is one these options retry.
func (ro RetryOptions) Wants(e jobs.Entry) bool {
	want := e.Status == jobs.StatusFailed || (ro.Cancelled && e.Status == jobs.StatusCancelled)
	return want && (ro.Reason == "" || strings.Contains(strings.ToLower(e.Error), strings.ToLower(ro.Reason)))
}

// entryStreamer is what a retry reads of the old batch's records: its
// description and its entries, one page at a time (*jobs.Tracker).
type entryStreamer interface {
	Get(ctx context.Context, id string) (jobs.Batch, error)
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
}

var _ entryStreamer = (*jobs.Tracker)(nil)

// Retry makes a new batch of the failed items of an old one, linked to it
// (Batch.RetryOf), with the old batch's task, output and options. Results
// the old batch wrote are kept and not paid for again: only failed items are
// queued. It returns the new batch's result; a batch with nothing to retry
// is an error that says so.
//
// The old batch's entries are read page by page, twice (a check that there
// is something to retry and that every entry names its key, then the
// listing of the new batch), so a retry of a large batch holds one page of
// entries at a time, not the batch.
func (in *Ingester) Retry(ctx context.Context, old string, ro RetryOptions) (Result, error) {
	var tr entryStreamer = in.Tracker
	b, err := tr.Get(ctx, old)
	if err != nil {
		return Result{}, err
	}
	ref := func(e jobs.Entry) (ItemRef, error) {
		src, part, _ := strings.Cut(e.Source, "#part=") // an email attachment
		if e.Key == "" || !strings.HasSuffix(src, "/"+e.Key) {
			return ItemRef{}, fmt.Errorf("retry %s: entry %s does not say its key (batch made by an older llamapipe?)", old, e.Source)
		}
		return ItemRef{Location: strings.TrimSuffix(src, "/"+e.Key), Key: e.Key, ResultBase: e.ResultBase, Part: part}, nil
	}
	n := 0
	if err := tr.EachEntry(ctx, old, func(e jobs.Entry) error {
		if !ro.Wants(e) {
			return nil
		}
		n++
		_, err := ref(e)
		return err
	}); err != nil {
		return Result{}, err
	}
	if n == 0 {
		return Result{}, fmt.Errorf("retry %s: no failed items%s to retry", old, map[bool]string{true: " matching " + fmt.Sprintf("%q", ro.Reason)}[ro.Reason != ""])
	}
	from := func(ctx context.Context, yield func(ItemRef) error) error {
		return tr.EachEntry(ctx, old, func(e jobs.Entry) error {
			if !ro.Wants(e) {
				return nil
			}
			r, err := ref(e)
			if err != nil {
				return err
			}
			return yield(r)
		})
	}
	// The new batch is made as the old one was; it is told to no webhook
	// and lists nothing (Include and Exclude apply to listing).
	spec := b.Spec
	spec.Include, spec.Exclude, spec.Webhook, spec.Force = nil, nil, "", false
	return in.Run(ctx, Options{Spec: spec, ItemsFrom: from, RetryOf: old, BatchID: ro.BatchID})
}

// errFound stops a scan at its first match.
var errFound = errors.New("found")

// HasRetryable reports whether a batch has an entry ro would retry,
// reading its entries page by page and stopping at the first.
func HasRetryable(ctx context.Context, tr interface {
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
}, batch string, ro RetryOptions) (bool, error) {
	err := tr.EachEntry(ctx, batch, func(e jobs.Entry) error {
		if ro.Wants(e) {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}
