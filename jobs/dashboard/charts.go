package dashboard

import (
	"context"
	"math"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/dashboard/chart"
	"github.com/llamapipe/llamapipe/jobs/series"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// Colors of the series (also what the browser test looks for).
const (
	colorDone       = "#1e8e3e"
	colorFailed     = "#d93025"
	colorThroughput = "#1a73e8"
	colorLatency    = "#8e24aa"
	colorCost       = "#e37400"
	colorRef        = "#5f6368"
)

// maxBins bounds a chart's points: a longer batch is drawn in bins of
// several minutes.
const maxBins = 240

// seriesReader reads a batch's per-minute counts (*jobs.Tracker has it).
type seriesReader interface {
	Series(ctx context.Context, batch string) (map[string]string, error)
}

var _ seriesReader = (*jobs.Tracker)(nil)

// Charts are a batch page's charts. Cost is nil when the batch's tenant
// has no cost budget; CostNote then says why.
type Charts struct {
	BurnUp, Throughput, Latency chart.Chart
	Cost                        *chart.Chart
	CostNote                    string
}

// bin is the items that ended in k consecutive minutes.
type bin struct {
	start time.Time
	series.Bucket
}

// binned groups buckets (oldest first) into at most maxBins bins of k
// minutes from the first bucket's minute, gaps included (a minute without
// ends is a bin of zeros).
func binned(buckets []series.Bucket) (bins []bin, k int) {
	if len(buckets) == 0 {
		return nil, 1
	}
	first, last := buckets[0].Minute, buckets[len(buckets)-1].Minute
	span := int(last.Sub(first)/time.Minute) + 1
	k = max(1, int(math.Ceil(float64(span)/maxBins)))
	bins = make([]bin, (span+k-1)/k)
	for i := range bins {
		bins[i].start = first.Add(time.Duration(i*k) * time.Minute)
	}
	for _, b := range buckets {
		x := &bins[int(b.Minute.Sub(first)/time.Minute)/k]
		x.Done += b.Done
		x.Failed += b.Failed
		x.Skipped += b.Skipped
		x.Cancelled += b.Cancelled
		x.ModelCalls += b.ModelCalls
		x.ModelMS += b.ModelMS
		x.ModelErrors += b.ModelErrors
		x.Cost += b.Cost
	}
	return bins, k
}

// buildCharts draws a batch's charts from its buckets; st is its tenant's
// spend and budget (nil: no tenant, or not readable).
func buildCharts(c jobs.Counts, buckets []series.Bucket, st *tenants.Status, currency string) Charts {
	bins, k := binned(buckets)
	const noData = "No data yet: nothing has ended"
	ch := Charts{
		BurnUp: chart.Chart{Title: "Items ended (burn-up)", Class: "burnup", Empty: noData, Series: []chart.Series{
			{Name: "done", Class: "done", Color: colorDone}, {Name: "failed", Class: "failed", Color: colorFailed}}},
		Throughput: chart.Chart{Title: "Throughput (items per minute)", Class: "throughput", Unit: "/min", Empty: noData,
			Series: []chart.Series{{Name: "items/min", Class: "throughput", Color: colorThroughput}}},
		Latency: chart.Chart{Title: "Model latency (mean duration of a model call)", Class: "latency", Unit: "s",
			Empty: "No data yet: no model call has ended", Series: []chart.Series{{Name: "seconds", Class: "latency", Color: colorLatency}}},
	}
	if c.Sealed && c.Total > 0 {
		ch.BurnUp.Refs = []chart.Ref{{Label: "total", Y: float64(c.Total), Color: colorRef}}
	}
	step := time.Duration(k) * time.Minute
	var done, failed, cost float64
	costLine := []chart.Point{}
	if len(bins) > 0 {
		origin := chart.Point{At: bins[0].start}
		ch.BurnUp.Series[0].Points = []chart.Point{origin}
		ch.BurnUp.Series[1].Points = []chart.Point{origin}
		costLine = append(costLine, origin)
	}
	for _, b := range bins {
		end := b.start.Add(step)
		done, failed, cost = done+float64(b.Done), failed+float64(b.Failed), cost+b.Cost
		ch.BurnUp.Series[0].Points = append(ch.BurnUp.Series[0].Points, chart.Point{At: end, Y: done})
		ch.BurnUp.Series[1].Points = append(ch.BurnUp.Series[1].Points, chart.Point{At: end, Y: failed})
		ch.Throughput.Series[0].Points = append(ch.Throughput.Series[0].Points, chart.Point{At: b.start, Y: float64(b.Ended()) / float64(k)})
		if ms, ok := b.MeanModelMS(); ok {
			ch.Latency.Series[0].Points = append(ch.Latency.Series[0].Points, chart.Point{At: b.start, Y: ms / 1000})
		}
		costLine = append(costLine, chart.Point{At: end, Y: cost})
	}

	switch {
	case st == nil:
		ch.CostNote = "Cost is charted against a tenant's budget: this batch has no tenant."
	case st.Budget.Monthly.Cost <= 0 && st.Budget.Daily.Cost <= 0:
		ch.CostNote = "Cost is charted against a tenant's budget: tenant " + st.Tenant + " has no cost budget."
	default:
		period, limit, spent := "monthly", st.Budget.Monthly.Cost, st.ThisMonth.Cost
		if limit <= 0 {
			period, limit, spent = "daily", st.Budget.Daily.Cost, st.Today.Cost
		}
		ch.Cost = &chart.Chart{Title: "Cost of this batch against tenant " + st.Tenant + "'s " + period + " budget", Class: "cost",
			Unit: currency, Empty: "No data yet: nothing has ended",
			Series: []chart.Series{{Name: "batch cost", Class: "cost", Color: colorCost, Points: costLine}},
			Refs: []chart.Ref{{Label: period + " budget", Y: limit, Color: colorFailed},
				{Label: "tenant's spend this " + map[string]string{"monthly": "month", "daily": "day"}[period], Y: spent, Color: colorRef}}}
		if len(bins) == 0 {
			ch.Cost.Series[0].Points = nil
		}
	}
	return ch
}
