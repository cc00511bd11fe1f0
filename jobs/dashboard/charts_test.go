package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/dashboard/chart"
	"github.com/llamapipe/llamapipe/jobs/series"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

var chartStart = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// sampleBuckets: minutes 0, 1, 2 and 5 (3 and 4 without ends; in minute 3
// model calls ended, no item did).
func sampleBuckets() []series.Bucket {
	m := func(i int) time.Time { return chartStart.Add(time.Duration(i) * time.Minute) }
	return []series.Bucket{
		{Minute: m(0), Done: 2, ModelCalls: 2, ModelMS: 3000, Cost: 0.02},
		{Minute: m(1), Done: 4, Failed: 1, ModelCalls: 5, ModelMS: 5000, ModelErrors: 1, Cost: 0.05},
		{Minute: m(2), Done: 1, Skipped: 2, ModelCalls: 1, ModelMS: 4000, Cost: 0.01},
		{Minute: m(3), ModelCalls: 4, ModelMS: 2000},
		{Minute: m(5), Done: 3, Failed: 2, ModelCalls: 5, ModelMS: 10000, Cost: 0.05},
	}
}

func last(s chart.Series) chart.Point { return s.Points[len(s.Points)-1] }

func TestChartsFollowTheBuckets(t *testing.T) {
	bs := sampleBuckets()
	ch := buildCharts(jobs.Counts{Total: 20, Sealed: true}, bs, nil, "USD")
	var done, failed, ended, cost float64
	for _, b := range bs {
		done, failed, ended, cost = done+float64(b.Done), failed+float64(b.Failed), ended+float64(b.Ended()), cost+b.Cost
	}
	// Burn-up: from zero to the sums, never down.
	for i, want := range []float64{done, failed} {
		s := ch.BurnUp.Series[i]
		if s.Points[0].Y != 0 || last(s).Y != want {
			t.Errorf("burn-up %s: %v → %v, want 0 → %v", s.Name, s.Points[0].Y, last(s).Y, want)
		}
		for j := 1; j < len(s.Points); j++ {
			if s.Points[j].Y < s.Points[j-1].Y || !s.Points[j].At.After(s.Points[j-1].At) {
				t.Errorf("burn-up %s goes back at point %d", s.Name, j)
			}
		}
	}
	if len(ch.BurnUp.Refs) != 1 || ch.BurnUp.Refs[0].Y != 20 {
		t.Errorf("burn-up total line %v, want 20", ch.BurnUp.Refs)
	}
	// Throughput: one point a minute, the quiet minutes at zero.
	tp := ch.Throughput.Series[0].Points
	if len(tp) != 6 {
		t.Fatalf("throughput has %d points, want 6 (minutes 0-5)", len(tp))
	}
	sum := 0.0
	for _, p := range tp {
		sum += p.Y
	}
	if sum != ended || tp[3].Y != 0 || tp[4].Y != 0 || tp[1].Y != float64(bs[1].Ended()) {
		t.Errorf("throughput %v, want the ended items per minute (sum %v)", tp, ended)
	}
	// Latency: the minutes with model calls (whether or not items ended),
	// the mean model call in seconds.
	lat := ch.Latency.Series[0].Points
	var want []chart.Point
	for _, b := range bs {
		if b.ModelCalls > 0 {
			want = append(want, chart.Point{At: b.Minute, Y: float64(b.ModelMS) / float64(b.ModelCalls) / 1000})
		}
	}
	if len(lat) != len(want) || len(want) != 5 {
		t.Fatalf("latency %v, want %v", lat, want)
	}
	for i := range want {
		if !lat[i].At.Equal(want[i].At) || lat[i].Y != want[i].Y {
			t.Errorf("latency point %d = %v, want %v (model_ms / model_calls)", i, lat[i], want[i])
		}
	}
	if !strings.Contains(ch.Latency.Title, "model call") {
		t.Errorf("latency chart titled %q, want it to say it charts model calls", ch.Latency.Title)
	}
	// No tenant: no cost chart, a note.
	if ch.Cost != nil || !strings.Contains(ch.CostNote, "no tenant") {
		t.Errorf("cost without a tenant: %v %q", ch.Cost, ch.CostNote)
	}
	// A tenant without a cost budget: a note naming it.
	st := tenants.Status{Tenant: "legal", Budget: tenants.Budget{Monthly: tenants.Limits{Tokens: 1000}}}
	if ch := buildCharts(jobs.Counts{}, bs, &st, "USD"); ch.Cost != nil || !strings.Contains(ch.CostNote, "legal has no cost budget") {
		t.Errorf("cost without a budget: %v %q", ch.Cost, ch.CostNote)
	}
	// With a monthly budget: the cumulative cost and the budget line.
	st.Budget.Monthly.Cost, st.ThisMonth.Cost = 1, 0.4
	ch = buildCharts(jobs.Counts{}, bs, &st, "USD")
	if ch.Cost == nil {
		t.Fatal("no cost chart with a budget")
	}
	if got := last(ch.Cost.Series[0]).Y; got < cost-1e-9 || got > cost+1e-9 {
		t.Errorf("cost ends at %v, want %v", got, cost)
	}
	if ch.Cost.Refs[0].Y != 1 || ch.Cost.Refs[1].Y != 0.4 || ch.Cost.Unit != "USD" {
		t.Errorf("cost refs %v unit %q", ch.Cost.Refs, ch.Cost.Unit)
	}
}

// A long batch is drawn in bins: at most maxBins points, the same totals.
func TestLongBatchIsBinned(t *testing.T) {
	var bs []series.Bucket
	total := 0
	for i := 0; i < 3000; i += 7 {
		bs = append(bs, series.Bucket{Minute: chartStart.Add(time.Duration(i) * time.Minute), Done: 1 + i%3})
		total += 1 + i%3
	}
	ch := buildCharts(jobs.Counts{}, bs, nil, "")
	if n := len(ch.Throughput.Series[0].Points); n > maxBins || n < maxBins/2 {
		t.Errorf("%d throughput points, want at most %d", n, maxBins)
	}
	if got := last(ch.BurnUp.Series[0]).Y; got != float64(total) {
		t.Errorf("burn-up ends at %v, want %d", got, total)
	}
}

func TestNoBucketsDrawNoDataYet(t *testing.T) {
	st := tenants.Status{Tenant: "legal", Budget: tenants.Budget{Daily: tenants.Limits{Cost: 5}}}
	ch := buildCharts(jobs.Counts{Total: 3, Sealed: true}, nil, &st, "EUR")
	for _, c := range []chart.Chart{ch.BurnUp, ch.Throughput, ch.Latency, *ch.Cost} {
		if svg := string(c.SVG()); !strings.Contains(svg, "chart-empty") || !strings.Contains(svg, "No data yet") {
			t.Errorf("%s without buckets: %s", c.Title, svg)
		}
	}
}
