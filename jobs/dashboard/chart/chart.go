// Package chart draws the dashboard's time-series charts on the server as
// inline SVG: no script, no library, nothing fetched by the browser. A
// chart is lines over time (each point also marked with a dot, so that a
// series of one point shows) with a y axis from zero, optional horizontal
// reference lines (a budget, a batch's total) and a legend; a chart whose
// series hold no point draws a "no data yet" box instead of empty axes.
//
// Every text (titles, names, labels) is escaped; the markup carries the
// data a test can read back: each series' polyline has class
// "series series-<Class>" and data-points with its number of points.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size of a chart's drawing, in SVG user units (the SVG scales to its
// container's width).
const (
	Width  = 640
	Height = 220
	left   = 58
	right  = 14
	top    = 28
	bottom = 30
)

// Point is one value at a time.
type Point struct {
	At time.Time
	Y  float64
}

// Series is one line.
type Series struct {
	// Name is the legend's text; Class names the series in the markup
	// (letters, digits and '-' are kept); Color is its stroke (CSS color).
	Name, Class, Color string
	Points             []Point
}

// Ref is a horizontal reference line (a budget, a total).
type Ref struct {
	Label string
	Y     float64
	Color string
}

// Chart is one chart.
type Chart struct {
	// Title is shown above the drawing; Class names the chart (its svg
	// has class "chart chart-<Class>").
	Title, Class string
	// Unit formats the y axis: "" for counts, "ms", "s", or a currency
	// code (two decimals).
	Unit   string
	Series []Series
	Refs   []Ref
	// Empty is the text of the "no data yet" state (default "No data
	// yet").
	Empty string
}

// Points is how many points the chart's series hold together.
func (c Chart) Points() int {
	n := 0
	for _, s := range c.Series {
		n += len(s.Points)
	}
	return n
}

// SVG renders the chart.
func (c Chart) SVG() template.HTML {
	var b strings.Builder
	class := "chart chart-" + slug(c.Class)
	if c.Points() == 0 {
		msg := c.Empty
		if msg == "" {
			msg = "No data yet"
		}
		fmt.Fprintf(&b, `<svg class="%s chart-empty" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
			class, Width, Height/2, esc(c.Title+": "+msg))
		fmt.Fprintf(&b, `<text x="8" y="18" font-size="13" font-weight="bold" fill="#222">%s</text>`, esc(c.Title))
		fmt.Fprintf(&b, `<rect x="1" y="28" width="%d" height="%d" fill="#fafafa" stroke="#ddd"/>`, Width-2, Height/2-30)
		fmt.Fprintf(&b, `<text class="no-data" x="%d" y="%d" text-anchor="middle" font-size="13" fill="#666">%s</text></svg>`,
			Width/2, Height/4+18, esc(msg))
		return template.HTML(b.String())
	}
	t0, t1, ymax := c.bounds()
	sx := func(t time.Time) float64 {
		return left + float64(t.Sub(t0))/float64(t1.Sub(t0))*float64(Width-left-right)
	}
	sy := func(y float64) float64 { return float64(Height-bottom) - y/ymax*float64(Height-top-bottom) }

	fmt.Fprintf(&b, `<svg class="%s" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		class, Width, Height, esc(c.Title))
	fmt.Fprintf(&b, `<text x="8" y="16" font-size="13" font-weight="bold" fill="#222">%s</text>`, esc(c.Title))
	// Legend, right-aligned on the title's line.
	x := float64(Width - right)
	for i := len(c.Series) - 1; i >= 0; i-- {
		s := c.Series[i]
		x -= float64(7*len([]rune(s.Name)) + 22)
		fmt.Fprintf(&b, `<rect x="%.1f" y="7" width="12" height="10" fill="%s"/><text x="%.1f" y="16" font-size="11" fill="#333">%s</text>`,
			x, esc(s.Color), x+16, esc(s.Name))
	}
	// Y grid and labels.
	step := niceStep(ymax / 4)
	for i := 0; float64(i)*step <= ymax+step/1e6; i++ {
		y := math.Round(float64(i)*step*1e6) / 1e6
		py := sy(y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, left, py, Width-right, py)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="10" fill="#666">%s</text>`, left-4, py+3, esc(c.format(y)))
	}
	// Axes and time labels (UTC): start, middle, end.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, left, Height-bottom, Width-right, Height-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, left, top, left, Height-bottom)
	layout := "15:04"
	switch span := t1.Sub(t0); {
	case span > 24*time.Hour:
		layout = "01-02 15:04"
	case span < 5*time.Minute:
		layout = "15:04:05"
	}
	for i, anchor := range []string{"start", "middle", "end"} {
		t := t0.Add(t1.Sub(t0) * time.Duration(i) / 2)
		label := t.UTC().Format(layout)
		if i == 2 {
			label += " UTC"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s" font-size="10" fill="#666">%s</text>`, sx(t), Height-bottom+14, anchor, esc(label))
	}
	// Reference lines.
	for _, r := range c.Refs {
		py := sy(r.Y)
		fmt.Fprintf(&b, `<line class="ref" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			left, py, Width-right, py, esc(r.Color))
		fmt.Fprintf(&b, `<text class="ref-label" x="%d" y="%.1f" text-anchor="end" font-size="10" fill="%s">%s</text>`,
			Width-right-2, py-4, esc(r.Color), esc(r.Label+" "+c.format(r.Y)))
	}
	// Series.
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		pts := make([]string, len(s.Points))
		for i, p := range s.Points {
			pts[i] = fmt.Sprintf("%.1f,%.1f", sx(p.At), sy(p.Y))
		}
		fmt.Fprintf(&b, `<polyline class="series series-%s" data-points="%d" points="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round"/>`,
			slug(s.Class), len(pts), strings.Join(pts, " "), esc(s.Color))
		for _, p := range s.Points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, sx(p.At), sy(p.Y), esc(s.Color))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// bounds is the time range (at least a minute wide) and the y axis' top
// (a nice number above every value and reference line; 1 when all are 0).
func (c Chart) bounds() (t0, t1 time.Time, ymax float64) {
	first := true
	for _, s := range c.Series {
		for _, p := range s.Points {
			if first || p.At.Before(t0) {
				t0 = p.At
			}
			if first || p.At.After(t1) {
				t1 = p.At
			}
			first = false
			ymax = math.Max(ymax, p.Y)
		}
	}
	for _, r := range c.Refs {
		ymax = math.Max(ymax, r.Y)
	}
	if t1.Sub(t0) < time.Minute {
		mid := t0.Add(t1.Sub(t0) / 2)
		t0, t1 = mid.Add(-30*time.Second), mid.Add(30*time.Second)
	}
	if ymax <= 0 {
		return t0, t1, 1
	}
	step := niceStep(ymax * 1.1 / 4)
	return t0, t1, math.Ceil(ymax*1.1/step) * step
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// format shows a y value in the chart's unit.
func (c Chart) format(y float64) string {
	switch c.Unit {
	case "":
		return strconv.FormatFloat(y, 'f', -1, 64)
	case "ms", "s", "/min":
		return strconv.FormatFloat(y, 'f', -1, 64) + " " + c.Unit
	default:
		return fmt.Sprintf("%.2f %s", y, c.Unit)
	}
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// slug keeps letters, digits and '-'.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
