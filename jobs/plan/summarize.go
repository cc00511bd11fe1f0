package plan

import "github.com/llamapipe/llamapipe/jobs"

// Summarize adds up the items' estimates; picked of them were sampled,
// the others extrapolated. The costs are left to the estimator's Price.
func Summarize(total, picked int, items []Item) Plan {
	p := Plan{Total: total, Kinds: map[jobs.Kind]Totals{}, Sampled: picked}
	for _, e := range items {
		if e.Partial {
			p.Partial++
		}
		if e.Skip != "" {
			if p.Skips == nil {
				p.Skips = map[string]int{}
			}
			p.Skips[e.Skip]++
			p.Skipped++
			continue
		}
		k := p.Kinds[e.Kind]
		k.Add(e)
		p.All.Add(e)
		p.Kinds[e.Kind] = k
	}
	return p
}
