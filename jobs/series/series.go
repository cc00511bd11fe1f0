// Package series reads a batch's per-minute counts (jobs.BatchSeriesKey,
// written by the record script as each item ends and by
// Tracker.CountModelCall as each model call ends) into buckets the
// dashboard's charts draw: items ended by status, cost, and the online model
// calls with their summed duration.
package series

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// Bucket is one minute of a batch's item ends.
type Bucket struct {
	// Minute is the bucket's start (UTC), by Redis's clock.
	Minute time.Time
	// Done, Failed, Skipped and Cancelled count the items that ended in
	// the minute by status.
	Done, Failed, Skipped, Cancelled int
	// ModelCalls counts the online model calls sent that ended in the
	// minute (answered or failed at the provider; not answers of a
	// provider's batch job), ModelMS sums their durations and ModelErrors
	// counts those that failed.
	ModelCalls, ModelErrors int
	ModelMS                 int64
	// Cost sums the items' cost.
	Cost float64
}

// Ended is how many items ended in the minute.
func (b Bucket) Ended() int { return b.Done + b.Failed + b.Skipped + b.Cancelled }

// MeanModelMS is the mean latency of the minute's model calls, and false
// when there were none.
func (b Bucket) MeanModelMS() (float64, bool) {
	if b.ModelCalls == 0 {
		return 0, false
	}
	return float64(b.ModelMS) / float64(b.ModelCalls), true
}

// Parse reads the hash (jobs.Tracker.Series) into buckets, oldest first.
// Fields it does not know are ignored.
func Parse(h map[string]string) []Bucket {
	byMin := map[int64]*Bucket{}
	for k, v := range h {
		ms, field, ok := strings.Cut(k, ":")
		if !ok {
			continue
		}
		m, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			continue
		}
		b := byMin[m]
		if b == nil {
			b = &Bucket{Minute: time.Unix(m*60, 0).UTC()}
			byMin[m] = b
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch field {
		case jobs.StatusDone:
			b.Done = int(n)
		case jobs.StatusFailed:
			b.Failed = int(n)
		case jobs.StatusSkipped:
			b.Skipped = int(n)
		case jobs.StatusCancelled:
			b.Cancelled = int(n)
		case "model_calls":
			b.ModelCalls = int(n)
		case "model_ms":
			b.ModelMS = n
		case "model_errors":
			b.ModelErrors = int(n)
		case "cost":
			b.Cost, _ = strconv.ParseFloat(v, 64)
		}
	}
	out := make([]Bucket, 0, len(byMin))
	for _, b := range byMin {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Minute.Before(out[j].Minute) })
	return out
}
