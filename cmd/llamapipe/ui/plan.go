package ui

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// PrintPlan prints a plan as a table by kind (items, pages, images,
// requests, estimated tokens and cost, and the batch-API cost where the
// profile has a batch price), the skips by reason, and what the numbers
// are.
func PrintPlan(w io.Writer, prof llm.Profile, p plan.Plan) {
	fmt.Fprintf(w, "Plan for %s (%s): %d items, %d to process, %d skipped\n\n", cmp.Or(prof.Model, "the provider's default model"), prof.Provider, p.Total, p.All.Items, p.Total-p.All.Items)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	batch := prof.Prices.BatchDiscount > 0
	header := "kind\titems\tpages\timages\trequests\test. input tokens\test. output tokens\test. cost\t"
	if batch {
		header += "batch API cost\t"
	}
	fmt.Fprintln(tw, header)
	kinds := slices.Sorted(maps.Keys(p.Kinds))
	line := func(name string, r plan.Totals) {
		s := fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t", name, r.Items, r.Pages, r.Images, r.Requests, r.InputTokens, r.OutputTokens, Money(r.Cost, prof.Prices.Currency))
		if batch && r.BatchCost != nil {
			s += Money(*r.BatchCost, prof.Prices.Currency) + "\t"
		}
		fmt.Fprintln(tw, s)
	}
	for _, k := range kinds {
		line(string(k), p.Kinds[k])
	}
	line("all", p.All)
	_ = tw.Flush()
	if len(p.Skips) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		reasons := make([]string, 0, len(p.Skips))
		for r := range p.Skips {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(w, "  %4d  %s\n", p.Skips[r], r)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "\nNote: "+n+".")
	}
	fmt.Fprintln(w, "\nToken counts are estimates (pages × 550 for PDFs, text length for other documents, Llama 4 tiles for images); the report after a run has the real ones.")
}

// Money formats an amount with 4 decimals and its currency, if any.
func Money(v float64, currency string) string {
	if currency == "" {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.4f %s", v, currency)
}
