package finalize

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// report renders report.md from a batch's tally, with the tenant's spend
// and budget when the batch has a tenant and the worker knows the tenants
// (best effort: without the numbers, the tenant is only named).
func (f *Finalizer) report(ctx context.Context, b jobs.Batch, c jobs.Counts, t *tally, now time.Time) string {
	if f.tenants == nil || b.Tenant == "" {
		return render(b, c, t, now, nil)
	}
	st, err := f.tenants.Status(ctx, b.Tenant)
	if err != nil {
		f.log.WarnContext(ctx, "report without the tenant's spend", "batch_id", b.ID, "error", err.Error())
		return render(b, c, t, now, nil)
	}
	return render(b, c, t, now, &st)
}

// Report renders report.md: totals, failures grouped by reason, wall time,
// tokens and cost, by kind. A batch's tenant is named.
func Report(b jobs.Batch, c jobs.Counts, entries []jobs.Entry, finished time.Time) string {
	return render(b, c, tallyOf(entries), finished, nil)
}

// ReportWithTenant is Report whose tenant line also gives the tenant's
// spend today and this month and what is left of its budget (st).
func ReportWithTenant(b jobs.Batch, c jobs.Counts, entries []jobs.Entry, finished time.Time, st tenants.Status) string {
	return render(b, c, tallyOf(entries), finished, &st)
}

// Bounds of the report's reason groups, so that a tally's memory does not
// grow with the batch: the sources listed per reason (the first by name),
// and the reasons told apart per status (the rest are counted together).
const (
	maxListed  = 20
	maxReasons = 200
	// otherReasons groups the reasons past maxReasons.
	otherReasons = "(other reasons)"
)

type agg struct {
	n, done, failed, skipped int
	in, out                  int64
	cost                     float64
	ms                       int64
}

// reasonGroup is the items of one status that ended for one reason: their
// count and the first maxListed sources by name.
type reasonGroup struct {
	n       int
	sources []string // sorted
}

// tally is what report.md says of a batch's entries, added up one entry at
// a time: its size depends on the kinds, the reasons (at most maxReasons
// per status) and maxListed, not on the number of entries.
type tally struct {
	kinds    map[string]*agg
	tot      agg
	currency string
	reasons  map[string]map[string]*reasonGroup // status → reason → group
	// quotes tallies the digests' quotes (nil: no document was exported).
	quotes *quoteTally
	// providers are the answers of a fallback chain by the provider (and
	// model) that gave them, each in its own currency (nil: no chain).
	providers map[[2]string]*providerAgg
}

// providerAgg is what one provider of a fallback chain answered.
type providerAgg struct {
	n        int
	in, out  int64
	cost     float64
	currency string
}

func newTally() *tally {
	return &tally{kinds: map[string]*agg{}, reasons: map[string]map[string]*reasonGroup{}}
}

func tallyOf(entries []jobs.Entry) *tally {
	t := newTally()
	for _, e := range entries {
		t.add(e)
	}
	return t
}

func (t *tally) add(e jobs.Entry) {
	k := t.kinds[string(e.Kind)]
	if k == nil {
		k = &agg{}
		t.kinds[string(e.Kind)] = k
	}
	for _, a := range []*agg{k, &t.tot} {
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
		t.currency = e.Currency
	}
	if e.Provider != "" {
		if t.providers == nil {
			t.providers = map[[2]string]*providerAgg{}
		}
		k := [2]string{e.Provider, e.Model}
		a := t.providers[k]
		if a == nil {
			a = &providerAgg{}
			t.providers[k] = a
		}
		a.n++
		a.in += int64(e.InputTokens)
		a.out += int64(e.OutputTokens)
		a.cost += e.Cost
		a.currency = cmp.Or(e.Currency, a.currency)
	}
	if e.Status == jobs.StatusDone {
		return
	}
	groups := t.reasons[e.Status]
	if groups == nil {
		groups = map[string]*reasonGroup{}
		t.reasons[e.Status] = groups
	}
	reason := e.Error
	g := groups[reason]
	if g == nil && len(groups) >= maxReasons {
		reason = otherReasons
		g = groups[reason]
	}
	if g == nil {
		g = &reasonGroup{}
		groups[reason] = g
	}
	g.n++
	i := sort.SearchStrings(g.sources, e.Source)
	if i < maxListed {
		g.sources = slices.Insert(g.sources, i, e.Source)
		if len(g.sources) > maxListed {
			g.sources = g.sources[:maxListed]
		}
	}
}

func render(b jobs.Batch, c jobs.Counts, t *tally, finished time.Time, st *tenants.Status) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# llamapipe batch %s\n\n", b.ID)
	fmt.Fprintf(&sb, "- Sources: %s\n", strings.Join(b.Sources, ", "))
	fmt.Fprintf(&sb, "- Task: %s\n- Output: %s\n", b.Task, b.Out)
	fmt.Fprintf(&sb, "- Manifest: %s\n", b.ManifestPath())
	if b.Provider != "" {
		fmt.Fprintf(&sb, "- Model: %s (%s)\n", b.Model, b.Provider)
	}
	switch {
	case st != nil:
		fmt.Fprintf(&sb, "- Tenant: %s\n", st.Summary(t.currency))
	case b.Tenant != "":
		fmt.Fprintf(&sb, "- Tenant: %s\n", b.Tenant)
	}
	wall := finished.Sub(b.Created).Round(time.Millisecond)
	fmt.Fprintf(&sb, "- Started: %s\n- Finished: %s\n- Wall time: %s\n\n", b.Created.UTC().Format(time.RFC3339), finished.UTC().Format(time.RFC3339), wall)

	if b.RetryOf != "" {
		orig := jobs.Batch{ID: b.RetryOf}
		fmt.Fprintf(&sb, "This batch retries the failed items of batch %s (its manifest: %s, its report: %s).\n\n",
			b.RetryOf, orig.ManifestPath(), orig.ReportPath())
	}
	sb.WriteString("## Totals\n\n| items | done | failed | skipped | cancelled |\n|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sb, "| %d | %d | %d | %d | %d |\n\n", c.Total, c.Done, c.Failed, c.Skipped, c.Cancelled)

	sb.WriteString("## Tokens and cost by kind\n\n| kind | items | done | failed | skipped | input tokens | output tokens | cost |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	names := make([]string, 0, len(t.kinds))
	for k := range t.kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a := t.kinds[k]
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", k, a.n, a.done, a.failed, a.skipped, a.in, a.out, money(a.cost, t.currency))
	}
	tot := t.tot
	fmt.Fprintf(&sb, "| **all** | %d | %d | %d | %d | %d | %d | %s |\n\n", tot.n, tot.done, tot.failed, tot.skipped, tot.in, tot.out, money(tot.cost, t.currency))
	if len(t.providers) > 0 {
		renderProviders(&sb, t.providers)
	}
	if tot.done > 0 {
		fmt.Fprintf(&sb, "Processing time per item (sum over workers): %s in all.\n\n", (time.Duration(tot.ms) * time.Millisecond).Round(time.Millisecond))
	}
	if q := t.quotes; q != nil && q.docs > 0 {
		renderQuotes(&sb, b, q)
	}
	if c.Fatal != "" {
		fmt.Fprintf(&sb, "## Batch stopped\n\n%s\n\n", c.Fatal)
	}

	for _, status := range []string{jobs.StatusFailed, jobs.StatusSkipped, jobs.StatusCancelled} {
		groups := t.reasons[status]
		if len(groups) == 0 {
			continue
		}
		title := map[string]string{jobs.StatusFailed: "Failures", jobs.StatusSkipped: "Skipped", jobs.StatusCancelled: "Cancelled"}[status]
		fmt.Fprintf(&sb, "## %s by reason\n\n", title)
		reasons := make([]string, 0, len(groups))
		for r := range groups {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if groups[reasons[i]].n != groups[reasons[j]].n {
				return groups[reasons[i]].n > groups[reasons[j]].n
			}
			return reasons[i] < reasons[j]
		})
		for _, r := range reasons {
			g := groups[r]
			fmt.Fprintf(&sb, "### %s (%d)\n\n", r, g.n)
			for _, s := range g.sources {
				fmt.Fprintf(&sb, "- %s\n", s)
			}
			if more := g.n - len(g.sources); more > 0 {
				fmt.Fprintf(&sb, "- … and %d more (see %s)\n", more, b.ManifestPath())
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

// renderQuotes says how many of the digests' quotes were found on their
// pages, and lists the documents with quotes not found first (most first):
// a reviewer checks those before trusting the register.
func renderQuotes(sb *strings.Builder, b jobs.Batch, q *quoteTally) {
	sb.WriteString("## Quotes checked against the pages\n\n")
	fmt.Fprintf(sb, "%s in %d documents (register: %s).\n\n", q.all, q.docs, ExportPath(b, RegisterCSV))
	if q.withBad == 0 {
		return
	}
	fmt.Fprintf(sb, "Documents with quotes not found on their pages (%d; check these first):\n\n", q.withBad)
	for _, d := range q.worst {
		fmt.Fprintf(sb, "- %s: %d not found (%s)\n", d.source, d.c.Unverified, d.c)
	}
	if more := q.withBad - len(q.worst); more > 0 {
		fmt.Fprintf(sb, "- … and %d more (see the quotes_not_found column of %s)\n", more, ExportPath(b, RegisterCSV))
	}
	sb.WriteString("\n")
}

// renderProviders writes which provider of the fallback chain answered
// how many items, with their tokens and cost (each in its currency).
func renderProviders(sb *strings.Builder, ps map[[2]string]*providerAgg) {
	sb.WriteString("## Tokens and cost by provider\n\n| provider | model | items | input tokens | output tokens | cost |\n|---|---|---:|---:|---:|---:|\n")
	keys := slices.SortedFunc(maps.Keys(ps), func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		a := ps[k]
		fmt.Fprintf(sb, "| %s | %s | %d | %d | %d | %s |\n", k[0], k[1], a.n, a.in, a.out, money(a.cost, a.currency))
	}
	sb.WriteString("\n")
}
