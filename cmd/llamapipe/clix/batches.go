package clix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// Lister is what the batches command reads of the batch records (a
// *jobs.Tracker).
type Lister interface {
	List(ctx context.Context, n int) ([]string, error)
	ListTenant(ctx context.Context, tenant string, n int) ([]string, error)
	Get(ctx context.Context, id string) (jobs.Batch, error)
	Counts(ctx context.Context, batch string) (jobs.Counts, error)
}

var _ Lister = (*jobs.Tracker)(nil)

// BatchFilter selects batches: Tenant and State ("" for any), at most
// Limit of them (<= 0: all), newest first.
type BatchFilter struct {
	Tenant string
	State  string
	Limit  int
}

// Validate refuses a state that is not one of jobs.States.
func (f BatchFilter) Validate() error {
	if f.State != "" && !slices.Contains(jobs.States, f.State) {
		return fmt.Errorf("--state %q: use one of %s", f.State, strings.Join(jobs.States, ", "))
	}
	return nil
}

// ListBatches returns the batches f selects, newest first. Batches whose
// records expired while they were read are left out.
func ListBatches(ctx context.Context, l Lister, f BatchFilter) ([]BatchStatus, error) {
	var ids []string
	var err error
	if f.Tenant != "" {
		ids, err = l.ListTenant(ctx, f.Tenant, 0)
	} else {
		ids, err = l.List(ctx, 0)
	}
	if err != nil {
		return nil, err
	}
	out := []BatchStatus{}
	for _, id := range ids {
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		b, err := l.Get(ctx, id)
		if errors.Is(err, jobs.ErrNoBatch) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := l.Counts(ctx, id)
		if errors.Is(err, jobs.ErrNoBatch) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s := NewBatchStatus(b, c, nil)
		if f.State != "" && s.State != f.State {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// PrintBatches writes batches as a table.
func PrintBatches(w io.Writer, bs []BatchStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tTENANT\tCREATED\tITEMS\tDONE\tFAILED\tSKIPPED\tCANCELLED")
	for _, b := range bs {
		total := fmt.Sprint(b.Counts.Total)
		if !b.Counts.Sealed {
			total = "?"
		}
		tenant := b.Tenant
		if tenant == "" {
			tenant = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", b.ID, b.State, tenant, b.Created.UTC().Format(time.DateTime),
			total, b.Counts.Done, b.Counts.Failed, b.Counts.Skipped, b.Counts.Cancelled)
	}
	return tw.Flush()
}
