package ingest

import (
	"context"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// Records is what ingest keeps of batches (a *jobs.Tracker): it creates a
// batch, records the items it skips, and seals the batch with its total;
// a retry reads the old batch and its entries page by page; a listing
// stopped part-way cancels its batch.
type Records interface {
	Create(ctx context.Context, b jobs.Batch) error
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Record(ctx context.Context, batch string, e jobs.Entry) (recorded, complete bool, err error)
	RecordListed(ctx context.Context, batch string, chunk int, es []jobs.Entry) (int, error)
	Seal(ctx context.Context, batch string, total int) (complete bool, err error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
	Cancel(ctx context.Context, batch string, at time.Time) (bool, error)
	EachEntry(ctx context.Context, batch string, fn func(jobs.Entry) error) error
}

var _ Records = (*jobs.Tracker)(nil)
