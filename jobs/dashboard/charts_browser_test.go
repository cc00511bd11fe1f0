package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

// newChartsFixture is the dashboard fixture with tenant legal (a monthly
// cost budget) and two of its batches: b-charts, finished, 30 items that
// ended over 12 minutes (its series written as the record script does,
// at chosen minutes), and b-fresh, created, nothing ended.
func newChartsFixture(t *testing.T) *fixture {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg, err := tenants.Parse([]byte("tenants: {legal: {budget: {monthly: {cost: 2}}}}"))
	if err != nil {
		t.Fatal(err)
	}
	budgets := &tenants.Budgets{File: tenants.Static(cfg), Now: func() time.Time { return now }}
	f := newFixture(t, func(c *Config) { c.Tenants = budgets })
	budgets.Ledger = tenants.NewLedger(f.rdb, "")
	ctx := context.Background()
	spec := jobs.Spec{Tenant: "legal", Task: jobs.TaskAuto, Queue: jobs.QueueDefault, Sources: []string{"/in"}, Out: "/out"}
	for _, id := range []string{"b-charts", "b-fresh"} {
		if err := f.tracker.Create(ctx, jobs.Batch{ID: id, Created: now.Add(-15 * time.Minute), Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	for i := range n {
		st := jobs.StatusDone
		if i%6 == 5 {
			st = jobs.StatusFailed
		}
		e := jobs.Entry{Item: fmt.Sprintf("i%02d", i), Source: fmt.Sprintf("/in/%02d.pdf", i), Kind: jobs.KindDocument, Status: st,
			InputTokens: 900, OutputTokens: 90, Cost: 0.01, Currency: "USD", DurationMS: int64(1500 + 100*(i%7))}
		if _, _, err := f.tracker.Record(ctx, "b-charts", e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.tracker.Seal(ctx, "b-charts", n); err != nil {
		t.Fatal(err)
	}
	if err := f.tracker.MarkFinalized(ctx, "b-charts", now.Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The record script counted the items in the minute they were recorded
	// (now, by Redis's clock); spread them over the batch's 12 minutes.
	key := jobs.BatchSeriesKey("", "b-charts")
	first := now.Add(-14*time.Minute).Unix() / 60
	p := f.rdb.TxPipeline()
	p.Del(ctx, key)
	per := []int{1, 2, 4, 3, 0, 2, 5, 4, 3, 2, 3, 1} // 30 items
	i := 0
	for m, k := range per {
		prefix := strconv.FormatInt(first+int64(m), 10) + ":"
		for range k {
			st := jobs.StatusDone
			if i%6 == 5 {
				st = jobs.StatusFailed
			}
			p.HIncrBy(ctx, key, prefix+st, 1)
			p.HIncrBy(ctx, key, prefix+"model_calls", 1)
			p.HIncrBy(ctx, key, prefix+"model_ms", int64(1500+100*(i%7)))
			p.HIncrByFloat(ctx, key, prefix+"cost", 0.01)
			i++
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := budgets.Charge(ctx, "legal", tenants.Spend{Cost: 0.3, Tokens: 29700}); err != nil {
		t.Fatal(err)
	}
	return f
}

// seriesPixels counts the pixels of a PNG within a small distance of the
// colour hex (#rrggbb): what a drawn series leaves on the screenshot.
func seriesPixels(t *testing.T, shot []byte, hex string) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	var want [3]int
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &want[0], &want[1], &want[2]); err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := abs(int(r>>8)-want[0]) + abs(int(g>>8)-want[1]) + abs(int(bl>>8)-want[2])
			if d <= 40 {
				n++
			}
		}
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// minSeriesPixels is how many pixels of its colour a drawn series leaves
// at least: a line across a 600-pixel-wide chart, 2.5 pixels thick, leaves
// over a thousand; a legend swatch alone 120; an empty chart none.
const minSeriesPixels = 400

// chartShot is one chart's screenshot check: the chart element, the
// colour of its series and the polyline whose points the DOM holds.
type chartShot struct {
	chart, color, polyline string
}

var batchChartShots = []chartShot{
	{"svg.chart-burnup", colorDone, "polyline.series-done"},
	{"svg.chart-burnup", colorFailed, "polyline.series-failed"},
	{"svg.chart-throughput", colorThroughput, "polyline.series-throughput"},
	{"svg.chart-latency", colorLatency, "polyline.series-latency"},
	{"svg.chart-cost", colorCost, "polyline.series-cost"},
}

// TestBrowserChartsAreNotEmpty opens a finished batch's page in headless
// Chromium, screenshots each chart and fails when one is empty: its
// series' colour must cover a meaningful number of pixels and its
// polyline must hold the points the buckets give. The same measure on a
// batch where nothing has ended finds every chart empty (its "no data
// yet" state), so the check can tell.
func TestBrowserChartsAreNotEmpty(t *testing.T) {
	f := newChartsFixture(t)
	bctx := newBrowser(t, 60*time.Second, "Bearer "+testToken)

	res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+"/batches/b-charts"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("batch page: HTTP %d", res.Status)
	}
	wantPoints := map[string]int{ // from the 12 minutes written
		"polyline.series-done": 13, "polyline.series-failed": 13, "polyline.series-throughput": 12,
		"polyline.series-latency": 11, "polyline.series-cost": 13,
	}
	for _, c := range batchChartShots {
		if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(c.chart))); err != nil {
			t.Fatalf("%s not shown: %v", c.chart, err)
		}
		shot, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.CSS(c.chart)))
		if err != nil {
			t.Fatal(err)
		}
		if px := seriesPixels(t, shot, c.color); px < minSeriesPixels {
			t.Errorf("%s: %d pixels of %s's colour %s, want at least %d: the chart renders empty", c.chart, px, c.polyline, c.color, minSeriesPixels)
		}
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`(() => { const p = document.querySelector('`+c.chart+` `+c.polyline+`'); return p ? p.points.numberOfItems : 0 })()`))
		if err != nil {
			t.Fatal(err)
		}
		if n != wantPoints[c.polyline] {
			t.Errorf("%s %s: %d points rendered, want %d", c.chart, c.polyline, n, wantPoints[c.polyline])
		}
	}

	// The detector sees an empty chart: a batch where nothing ended.
	if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+"/batches/b-fresh")); err != nil {
		t.Fatal(err)
	}
	for _, c := range batchChartShots {
		shot, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.CSS(c.chart)))
		if err != nil {
			t.Fatal(err)
		}
		if px := seriesPixels(t, shot, c.color); px >= minSeriesPixels {
			t.Errorf("empty %s: %d pixels of %s, the measure cannot tell an empty chart", c.chart, px, c.color)
		}
	}
	noData, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart-empty .no-data').length`))
	if err != nil {
		t.Fatal(err)
	}
	if noData != 4 {
		t.Errorf("%d charts in the \"no data yet\" state on a fresh batch, want 4", noData)
	}
}
