package chart

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

type xy struct{ x, y float64 }

// polyline returns the points of the series of class cls in svg, and its
// data-points attribute.
func polyline(t *testing.T, svg, cls string) ([]xy, int) {
	t.Helper()
	m := regexp.MustCompile(`<polyline class="series series-` + cls + `" data-points="(\d+)" points="([^"]*)"`).FindStringSubmatch(svg)
	if m == nil {
		t.Fatalf("no polyline of series %s in %s", cls, svg)
	}
	n, _ := strconv.Atoi(m[1])
	var out []xy
	for _, p := range strings.Fields(m[2]) {
		xs, ys, _ := strings.Cut(p, ",")
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad point %q", p)
		}
		out = append(out, xy{x, y})
	}
	return out, n
}

// The drawn points are the values: as many, in time order, x proportional
// to time and height above the zero line proportional to the value.
func TestPointsMatchValues(t *testing.T) {
	values := []float64{0, 3, 7, 2, 12, 5}
	minutes := []int{0, 1, 2, 4, 5, 9} // uneven spacing
	var pts []Point
	for i, v := range values {
		pts = append(pts, Point{At: t0.Add(time.Duration(minutes[i]) * time.Minute), Y: v})
	}
	svg := string(Chart{Title: "Throughput", Class: "tp", Series: []Series{{Name: "items", Class: "items", Color: "#1a73e8", Points: pts}}}.SVG())
	got, n := polyline(t, svg, "items")
	if n != len(values) || len(got) != len(values) {
		t.Fatalf("%d points drawn (data-points %d), want %d", len(got), n, len(values))
	}
	base, peak := got[0].y, got[4].y // values 0 and 12
	width := got[len(got)-1].x - got[0].x
	for i, p := range got {
		if h, want := (base-p.y)/(base-peak), values[i]/12; math.Abs(h-want) > 0.01 {
			t.Errorf("point %d: height %.3f of the peak's, want %.3f", i, h, want)
		}
		if x, want := (p.x-got[0].x)/width, float64(minutes[i])/9; math.Abs(x-want) > 0.01 {
			t.Errorf("point %d: at %.3f of the width, want %.3f", i, x, want)
		}
		if p.y < top || p.y > Height-bottom || p.x < left || p.x > Width-right {
			t.Errorf("point %d (%v) outside the plot", i, p)
		}
	}
	if c := strings.Count(svg, "<circle"); c != len(values) {
		t.Errorf("%d dots, want %d", c, len(values))
	}
}

func TestEmptySeriesRendersNoDataYet(t *testing.T) {
	for _, c := range []Chart{
		{Title: "Burn-up", Class: "burnup", Series: []Series{{Name: "done", Class: "done", Color: "#0a0"}, {Name: "failed", Class: "failed", Color: "#a00"}}},
		{Title: "Cost", Class: "cost", Refs: []Ref{{Label: "budget", Y: 50, Color: "#a00"}}},
		{Title: "Latency", Class: "latency", Empty: "No item called the model yet"},
	} {
		svg := string(c.SVG())
		want := c.Empty
		if want == "" {
			want = "No data yet"
		}
		if !strings.Contains(svg, `chart-empty`) || !strings.Contains(svg, `class="no-data"`) || !strings.Contains(svg, want) {
			t.Errorf("%s: no \"no data yet\" state: %s", c.Title, svg)
		}
		for _, axis := range []string{"<polyline", "<line", "<circle"} {
			if strings.Contains(svg, axis) {
				t.Errorf("%s: empty chart draws %s (axes or lines)", c.Title, axis)
			}
		}
	}
}

// A single point shows (a dot), and a reference line above every value is
// inside the plot with its label.
func TestOnePointAndReferenceLine(t *testing.T) {
	c := Chart{Title: "Cost", Class: "cost", Unit: "USD",
		Series: []Series{{Name: "batch cost", Class: "cost", Color: "#e37400", Points: []Point{{At: t0, Y: 0.4}}}},
		Refs:   []Ref{{Label: "monthly budget", Y: 50, Color: "#d93025"}}}
	svg := string(c.SVG())
	got, n := polyline(t, svg, "cost")
	if n != 1 || len(got) != 1 || strings.Count(svg, "<circle") != 1 {
		t.Fatalf("one point: %v (data-points %d)", got, n)
	}
	m := regexp.MustCompile(`<line class="ref" x1="[\d.]+" y1="([\d.]+)"`).FindStringSubmatch(svg)
	if m == nil {
		t.Fatal("no reference line")
	}
	ry, _ := strconv.ParseFloat(m[1], 64)
	if ry < top || ry >= got[0].y {
		t.Errorf("budget line at y=%v, want inside the plot and above the cost (y=%v)", ry, got[0].y)
	}
	if !strings.Contains(svg, "monthly budget 50.00 USD") {
		t.Errorf("no budget label: %s", svg)
	}
}

func TestTextIsEscaped(t *testing.T) {
	svg := string(Chart{Title: `<script>alert(1)</script>`, Class: `x"><script>`,
		Series: []Series{{Name: `<b>n</b>`, Class: `a"b`, Color: `red" onload="x`, Points: []Point{{At: t0, Y: 1}}}}}.SVG())
	for _, bad := range []string{"<script>", "<b>", `" onload="`, `a"b`} {
		if strings.Contains(svg, bad) {
			t.Errorf("unescaped %q in %s", bad, svg)
		}
	}
}
