package finalize

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// report renders report.md, with the tenant's spend and budget when the
// batch has a tenant and the worker knows the tenants (best effort: without
// the numbers, the tenant is only named).
func (f *Finalizer) report(ctx context.Context, b jobs.Batch, c jobs.Counts, entries []jobs.Entry, now time.Time) string {
	if f.tenants == nil || b.Tenant == "" {
		return Report(b, c, entries, now)
	}
	st, err := f.tenants.Status(ctx, b.Tenant)
	if err != nil {
		f.log.WarnContext(ctx, "report without the tenant's spend", "batch_id", b.ID, "error", err.Error())
		return Report(b, c, entries, now)
	}
	return ReportWithTenant(b, c, entries, now, st)
}

// Report renders report.md: totals, failures grouped by reason, wall time,
// tokens and cost, by kind. A batch's tenant is named.
func Report(b jobs.Batch, c jobs.Counts, entries []jobs.Entry, finished time.Time) string {
	return report(b, c, entries, finished, nil)
}

// ReportWithTenant is Report whose tenant line also gives the tenant's
// spend today and this month and what is left of its budget (st).
func ReportWithTenant(b jobs.Batch, c jobs.Counts, entries []jobs.Entry, finished time.Time, st tenants.Status) string {
	return report(b, c, entries, finished, &st)
}

func report(b jobs.Batch, c jobs.Counts, entries []jobs.Entry, finished time.Time, st *tenants.Status) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# llamapipe batch %s\n\n", b.ID)
	fmt.Fprintf(&sb, "- Sources: %s\n", strings.Join(b.Sources, ", "))
	fmt.Fprintf(&sb, "- Task: %s\n- Output: %s\n", b.Task, b.Out)
	if b.Provider != "" {
		fmt.Fprintf(&sb, "- Model: %s (%s)\n", b.Model, b.Provider)
	}
	switch {
	case st != nil:
		cur := ""
		for _, e := range entries {
			cur = cmp.Or(e.Currency, cur)
		}
		fmt.Fprintf(&sb, "- Tenant: %s\n", st.Summary(cur))
	case b.Tenant != "":
		fmt.Fprintf(&sb, "- Tenant: %s\n", b.Tenant)
	}
	wall := finished.Sub(b.Created).Round(time.Millisecond)
	fmt.Fprintf(&sb, "- Started: %s\n- Finished: %s\n- Wall time: %s\n\n", b.Created.UTC().Format(time.RFC3339), finished.UTC().Format(time.RFC3339), wall)

	if b.RetryOf != "" {
		fmt.Fprintf(&sb, "This batch retries the failed items of batch %s.\n\n", b.RetryOf)
	}
	sb.WriteString("## Totals\n\n| items | done | failed | skipped | cancelled |\n|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sb, "| %d | %d | %d | %d | %d |\n\n", c.Total, c.Done, c.Failed, c.Skipped, c.Cancelled)

	type agg struct {
		n, done, failed, skipped int
		in, out                  int64
		cost                     float64
		ms                       int64
	}
	kinds := map[string]*agg{}
	currency := ""
	var tot agg
	for _, e := range entries {
		k := kinds[string(e.Kind)]
		if k == nil {
			k = &agg{}
			kinds[string(e.Kind)] = k
		}
		for _, a := range []*agg{k, &tot} {
			a.n++
			switch e.Status {
			case jobs.StatusDone:
				a.done++
			case jobs.StatusFailed:
				a.failed++
			case jobs.StatusSkipped:
				a.skipped++
			}
			a.in += int64(e.InputTokens)
			a.out += int64(e.OutputTokens)
			a.cost += e.Cost
			a.ms += e.DurationMS
		}
		if e.Currency != "" {
			currency = e.Currency
		}
	}
	sb.WriteString("## Tokens and cost by kind\n\n| kind | items | done | failed | skipped | input tokens | output tokens | cost |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a := kinds[k]
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", k, a.n, a.done, a.failed, a.skipped, a.in, a.out, money(a.cost, currency))
	}
	fmt.Fprintf(&sb, "| **all** | %d | %d | %d | %d | %d | %d | %s |\n\n", tot.n, tot.done, tot.failed, tot.skipped, tot.in, tot.out, money(tot.cost, currency))
	if tot.done > 0 {
		fmt.Fprintf(&sb, "Processing time per item (sum over workers): %s in all.\n\n", (time.Duration(tot.ms) * time.Millisecond).Round(time.Millisecond))
	}
	if c.Fatal != "" {
		fmt.Fprintf(&sb, "## Batch stopped\n\n%s\n\n", c.Fatal)
	}

	for _, st := range []string{jobs.StatusFailed, jobs.StatusSkipped, jobs.StatusCancelled} {
		groups := map[string][]string{}
		for _, e := range entries {
			if e.Status == st {
				groups[e.Error] = append(groups[e.Error], e.Source)
			}
		}
		if len(groups) == 0 {
			continue
		}
		title := map[string]string{jobs.StatusFailed: "Failures", jobs.StatusSkipped: "Skipped", jobs.StatusCancelled: "Cancelled"}[st]
		fmt.Fprintf(&sb, "## %s by reason\n\n", title)
		reasons := make([]string, 0, len(groups))
		for r := range groups {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if len(groups[reasons[i]]) != len(groups[reasons[j]]) {
				return len(groups[reasons[i]]) > len(groups[reasons[j]])
			}
			return reasons[i] < reasons[j]
		})
		for _, r := range reasons {
			srcs := groups[r]
			fmt.Fprintf(&sb, "### %s (%d)\n\n", r, len(srcs))
			for i, s := range srcs {
				if i == 20 {
					fmt.Fprintf(&sb, "- … and %d more (see manifest.jsonl)\n", len(srcs)-20)
					break
				}
				fmt.Fprintf(&sb, "- %s\n", s)
			}
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

func money(v float64, currency string) string {
	if currency == "" {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.4f %s", v, currency)
}
