package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CostText is the cost with its currency ("0.1234 USD", "1.0000 RUB + 0.1234 USD").
func (c Counts) CostText() string {
	if len(c.Costs) == 0 {
		return strconv.FormatFloat(c.Cost, 'f', 4, 64)
	}
	parts := make([]string, 0, len(c.Costs))
	for _, cur := range slices.Sorted(maps.Keys(c.Costs)) {
		parts = append(parts, strconv.FormatFloat(c.Costs[cur], 'f', 4, 64)+" "+cur)
	}
	return strings.Join(parts, " + ")
}

// Progress is what a long item reports while it runs (pages extracted,
// chunks mapped, reduce level), so an operator can tell a slow item from a
// stuck one. It is removed when the item's final entry is recorded.
type Progress struct {
	Item   string `json:"item"`
	Source string `json:"source"`
	// Stage is e.g. "extract", "map", "reduce 2".
	Stage string `json:"stage"`
	// Done of Total units of the stage (pages, chunks, partial results).
	Done    int       `json:"done"`
	Total   int       `json:"total"`
	Updated time.Time `json:"updated"`
}

// SetProgress stores an item's progress.
func (t *Tracker) SetProgress(ctx context.Context, batch string, p Progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("progress of %s: %w", p.Source, err)
	}
	if err := t.rdb.HSet(ctx, BatchProgressKey(t.prefix, batch), p.Item, b).Err(); err != nil {
		return fmt.Errorf("progress of %s: %w", p.Source, err)
	}
	return nil
}

// Progress returns the progress of a batch's running items, oldest update
// first (the likeliest to be stuck).
func (t *Tracker) Progress(ctx context.Context, batch string) ([]Progress, error) {
	m, err := t.rdb.HGetAll(ctx, BatchProgressKey(t.prefix, batch)).Result()
	if err != nil {
		return nil, fmt.Errorf("progress of batch %s: %w", batch, err)
	}
	out := make([]Progress, 0, len(m))
	for _, v := range m {
		var p Progress
		if json.Unmarshal([]byte(v), &p) == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Updated.Before(out[j].Updated) })
	return out, nil
}
