package offline

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders for image parts
	_ "image/jpeg"
	_ "image/png"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// Analysis sizes: colours are measured on a copy at most colorSide pixels
// wide and high, sharpness on one at most blurSide.
const (
	colorSide = 128
	blurSide  = 512
	// blurGrid splits the sharpness image into blurGrid x blurGrid tiles.
	blurGrid = 8
	// flatStd: a gray image whose standard deviation is below this is flat
	// (blank): there is nothing to be blurry.
	flatStd = 1.5
)

// imageStats are the measurements of one image.
type imageStats struct {
	Width, Height int
	Format        string // "jpeg", "png", ...
	Orientation   string // "landscape", "portrait" or "square"
	Colors        []colorShare
	// Background is the named colour of most border pixels, "transparent"
	// or "mixed" when no colour covers 60% of the border.
	Background      string
	WhiteBackground bool
	Transparent     bool
	Sharpness       float64
	Flat            bool
	Blurry          bool
}

type colorShare struct {
	Name  string
	Share float64
}

type namedColor struct {
	name    int // index in colorNames
	l, a, b float64
}

// colorNames are the colour names answers use, and palette the reference
// colours that map to them (several shades may share a name).
var colorNames, palette = func() ([]string, []namedColor) {
	defs := []struct {
		name    string
		r, g, b uint8
	}{
		{"black", 0, 0, 0}, {"dark gray", 70, 70, 70}, {"gray", 128, 128, 128},
		{"light gray", 195, 195, 195}, {"white", 255, 255, 255},
		{"red", 220, 20, 30}, {"dark red", 128, 10, 20}, {"pink", 250, 150, 180},
		{"orange", 255, 140, 0}, {"brown", 130, 75, 35}, {"beige", 225, 205, 165},
		{"yellow", 255, 220, 0}, {"olive", 128, 128, 0}, {"green", 30, 160, 50},
		{"dark green", 0, 90, 30}, {"teal", 0, 128, 128}, {"turquoise", 64, 205, 200},
		{"light blue", 140, 190, 235}, {"light blue", 150, 175, 205},
		{"blue", 30, 80, 220}, {"blue", 70, 100, 160}, {"navy", 10, 20, 110}, {"navy", 35, 45, 85},
		{"purple", 120, 40, 150}, {"lavender", 190, 160, 230}, {"magenta", 220, 0, 200},
	}
	var names []string
	index := map[string]int{}
	out := make([]namedColor, len(defs))
	for i, d := range defs {
		n, ok := index[d.name]
		if !ok {
			n = len(names)
			index[d.name] = n
			names = append(names, d.name)
		}
		l, a, b := lab(d.r, d.g, d.b)
		out[i] = namedColor{n, l, a, b}
	}
	return names, out
}()

// whiteIndex is the index of "white" in colorNames.
var whiteIndex = slices.Index(colorNames, "white")

func linear(c uint8) float64 {
	v := float64(c) / 255
	if v <= 0.04045 {
		return v / 12.92
	}
	return math.Pow((v+0.055)/1.055, 2.4)
}

// lab converts sRGB to CIE L*a*b* (D65).
func lab(r8, g8, b8 uint8) (float64, float64, float64) {
	r, g, b := linear(r8), linear(g8), linear(b8)
	x := (0.4124*r + 0.3576*g + 0.1805*b) / 0.95047
	y := 0.2126*r + 0.7152*g + 0.0722*b
	z := (0.0193*r + 0.1192*g + 0.9505*b) / 1.08883
	f := func(t float64) float64 {
		if t > 216.0/24389 {
			return math.Cbrt(t)
		}
		return (24389.0/27*t + 16) / 116
	}
	fx, fy, fz := f(x), f(y), f(z)
	return 116*fy - 16, 500 * (fx - fy), 200 * (fy - fz)
}

// nameOf returns the index in colorNames of the colour nearest to c.
func nameOf(c color.NRGBA, cache map[uint32]int) int {
	key := uint32(c.R)<<16 | uint32(c.G)<<8 | uint32(c.B)
	if i, ok := cache[key]; ok {
		return i
	}
	l, a, b := lab(c.R, c.G, c.B)
	best, bestD := 0, math.Inf(1)
	for _, p := range palette {
		d := (l-p.l)*(l-p.l) + (a-p.a)*(a-p.a) + (b-p.b)*(b-p.b)
		if d < bestD {
			best, bestD = p.name, d
		}
	}
	cache[key] = best
	return best
}

// imageSize returns the pixel size of encoded image data, or zeros.
func imageSize(data []byte) (int, int) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}

// analyzeImage decodes and measures one image part.
func (c *Client) analyzeImage(img *llm.Image) (*imageStats, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Data))
	if err != nil {
		return nil, permanent("decode image (%s, %d bytes): %v", img.MIME, len(img.Data), err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, permanent("decode image: empty %dx%d image", cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(c.opts.MaxImagePixels) {
		return nil, &llm.Error{Kind: llm.TooLarge, Provider: "offline",
			Message: fmt.Sprintf("image %dx%d exceeds %d pixels", cfg.Width, cfg.Height, c.opts.MaxImagePixels)}
	}
	m, _, err := image.Decode(bytes.NewReader(img.Data))
	if err != nil {
		return nil, permanent("decode %s image: %v", format, err)
	}
	return c.measure(m, format), nil
}

// measure computes the statistics of a decoded image.
func (c *Client) measure(m image.Image, format string) *imageStats {
	b := m.Bounds()
	st := &imageStats{Width: b.Dx(), Height: b.Dy(), Format: format}
	switch {
	case abs(st.Width-st.Height)*20 <= max(st.Width, st.Height):
		st.Orientation = "square"
	case st.Width > st.Height:
		st.Orientation = "landscape"
	default:
		st.Orientation = "portrait"
	}
	if o, ok := m.(interface{ Opaque() bool }); ok {
		st.Transparent = !o.Opaque()
	}

	small := imaging.Fit(m, colorSide, colorSide, imaging.Box)
	sw, sh := small.Bounds().Dx(), small.Bounds().Dy()
	cache := map[uint32]int{}
	names := make([]int, sw*sh) // colour name per pixel, -1 when transparent
	border := make([]int, len(colorNames))
	borderN, borderWhite, borderClear := 0, 0, 0
	band := max(1, min(sw, sh)/20)
	for y := 0; y < sh; y++ {
		for x := 0; x < sw; x++ {
			px := small.NRGBAAt(x, y)
			clear := px.A < 32
			onBorder := x < band || y < band || x >= sw-band || y >= sh-band
			px = overWhite(px)
			i := nameOf(px, cache)
			names[y*sw+x] = i
			if clear {
				names[y*sw+x] = -1
			}
			if onBorder {
				borderN++
				border[i]++
				if clear {
					borderClear++
				}
				if whiteish(px) {
					borderWhite++
				}
			}
		}
	}
	mode := 0
	for i, n := range border {
		if n > border[mode] {
			mode = i
		}
	}
	bgName := -1 // the uniform background's colour, if any
	switch {
	case st.Transparent && borderClear*2 > borderN:
		st.Background = "transparent"
	case border[mode]*10 >= borderN*6:
		st.Background = colorNames[mode]
		bgName = mode
	default:
		st.Background = "mixed"
	}
	// Transparent borders are flattened onto white downstream.
	st.WhiteBackground = borderWhite*100 >= borderN*85

	// Colours of the subject: leave out transparent pixels and those of a
	// uniform background's colour, unless that leaves (almost) nothing.
	st.Colors = dominantColors(names, bgName)
	if st.Colors == nil {
		st.Colors = dominantColors(names, -2)
	}
	st.Sharpness, st.Flat = sharpness(m)
	st.Blurry = !st.Flat && st.Sharpness < c.opts.BlurThreshold
	return st
}

// dominantColors returns the colour names covering at least 5% of the
// pixels, most common first (at most five), ignoring pixels named skip and
// transparent ones (-1) unless skip is -2 (count everything, transparent as
// white). It returns nil when under 5% of the pixels are counted.
func dominantColors(names []int, skip int) []colorShare {
	counts := make([]int, len(colorNames))
	total := 0
	for _, n := range names {
		switch {
		case skip == -2 && n == -1:
			n = whiteIndex
		case n == -1 || n == skip:
			continue
		}
		counts[n]++
		total++
	}
	if total*20 < len(names) {
		return nil
	}
	var out []colorShare
	for i, n := range counts {
		if share := float64(n) / float64(total); share >= 0.05 {
			out = append(out, colorShare{colorNames[i], share})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Share > out[b].Share })
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// overWhite composites a straight-alpha pixel onto white.
func overWhite(p color.NRGBA) color.NRGBA {
	if p.A == 255 {
		return p
	}
	a := uint32(p.A)
	mix := func(c uint8) uint8 { return uint8((uint32(c)*a + 255*(255-a) + 127) / 255) }
	return color.NRGBA{mix(p.R), mix(p.G), mix(p.B), 255}
}

func whiteish(p color.NRGBA) bool {
	lo := min(p.R, p.G, p.B)
	hi := max(p.R, p.G, p.B)
	return lo >= 220 && hi-lo <= 25
}

// sharpness is the variance of the Laplacian of a gray copy at most
// blurSide pixels wide and high, computed per tile of a blurGrid grid and
// averaged over the sharpest quarter of the tiles (so a sharp product on a
// plain background is not called blurry). flat reports an image with
// (almost) no contrast at all.
func sharpness(m image.Image) (score float64, flat bool) {
	g := imaging.Fit(m, blurSide, blurSide, imaging.Box)
	w, h := g.Bounds().Dx(), g.Bounds().Dy()
	if w < 3 || h < 3 {
		return 0, true
	}
	lum := make([]float64, w*h)
	var sum, sum2 float64
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := overWhite(g.NRGBAAt(x, y))
			v := 0.299*float64(p.R) + 0.587*float64(p.G) + 0.114*float64(p.B)
			lum[y*w+x] = v
			sum += v
			sum2 += v * v
		}
	}
	n := float64(w * h)
	if variance := sum2/n - (sum/n)*(sum/n); math.Sqrt(math.Max(variance, 0)) < flatStd {
		return 0, true
	}
	grid := min(blurGrid, (w-2)/4+1, (h-2)/4+1)
	type acc struct{ s, s2, n float64 }
	tiles := make([]acc, grid*grid)
	for y := 1; y < h-1; y++ {
		ty := min((y-1)*grid/(h-2), grid-1)
		for x := 1; x < w-1; x++ {
			tx := min((x-1)*grid/(w-2), grid-1)
			i := y*w + x
			l := lum[i-1] + lum[i+1] + lum[i-w] + lum[i+w] - 4*lum[i]
			t := &tiles[ty*grid+tx]
			t.s += l
			t.s2 += l * l
			t.n++
		}
	}
	vars := make([]float64, 0, len(tiles))
	for _, t := range tiles {
		if t.n > 0 {
			vars = append(vars, t.s2/t.n-(t.s/t.n)*(t.s/t.n))
		}
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(vars)))
	top := max(1, len(vars)/4)
	for _, v := range vars[:top] {
		score += v
	}
	return score / float64(top), false
}

// colorList is "red", "red and white" or "red, white and blue".
func colorList(cs []colorShare, n int) string {
	var names []string
	for i, c := range cs {
		if i == n {
			break
		}
		names = append(names, c.Name)
	}
	switch len(names) {
	case 0:
		return "no clear colour"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func backgroundPhrase(st *imageStats) string {
	switch {
	case st.Background == "transparent":
		return "on a transparent background"
	case st.WhiteBackground:
		return "on a white background"
	case st.Background == "mixed":
		return "on a varied background"
	}
	return "on a " + st.Background + " background"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// describe is the plain-text description of one image.
func describe(st *imageStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s image, %d×%d pixels, mostly %s, %s.",
		capitalize(article(st.Orientation)), st.Orientation, st.Width, st.Height, colorShares(st.Colors), backgroundPhrase(st))
	if st.Transparent {
		b.WriteString(" It has transparent areas.")
	}
	switch {
	case st.Flat:
		b.WriteString(" It is almost uniform, with no visible detail.")
	case st.Blurry:
		fmt.Fprintf(&b, " It looks blurry (sharpness %.0f).", st.Sharpness)
	default:
		fmt.Fprintf(&b, " It looks sharp (sharpness %.0f).", st.Sharpness)
	}
	return b.String()
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func colorShares(cs []colorShare) string {
	if len(cs) == 0 {
		return "no clear colour"
	}
	parts := make([]string, 0, 3)
	for i, c := range cs {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%.0f%%)", c.Name, c.Share*100))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// caption is the caption answer (see prompts/schemas/caption.json).
type caption struct {
	AltText     string            `json:"alt_text"`
	Caption     string            `json:"caption"`
	Title       string            `json:"title"`
	Category    string            `json:"category"`
	Colors      []string          `json:"colors"`
	Material    string            `json:"material"`
	Attributes  map[string]string `json:"attributes"`
	Tags        []string          `json:"tags"`
	VisibleText string            `json:"visible_text"`
	Quality     quality           `json:"quality"`
}

type quality struct {
	Blurry             bool `json:"blurry"`
	BackgroundNotWhite bool `json:"background_not_white"`
	Watermark          bool `json:"watermark"`
	MultipleProducts   bool `json:"multiple_products"`
	ContainsPerson     bool `json:"contains_person"`
}

func captionFromStats(st *imageStats) *caption {
	colors := make([]string, 0, len(st.Colors))
	for _, c := range st.Colors {
		colors = append(colors, c.Name)
	}
	tags := []string{st.Orientation}
	tags = append(tags, colors...)
	switch {
	case st.Background == "transparent":
		tags = append(tags, "transparent background")
	case st.WhiteBackground:
		tags = append(tags, "white background")
	}
	if st.Blurry {
		tags = append(tags, "blurry")
	}
	transparency := "no"
	if st.Transparent {
		transparency = "yes"
	}
	alt := fmt.Sprintf("%s image, mostly %s, %s", capitalize(st.Orientation), colorList(st.Colors, 3), backgroundPhrase(st))
	return &caption{
		AltText:  truncateRunes(alt, 125),
		Caption:  truncateRunes(describe(st), 400),
		Title:    truncateRunes(capitalize(colorList(st.Colors, 2))+" "+st.Orientation+" image", 120),
		Category: "unknown",
		Colors:   colors,
		Attributes: map[string]string{
			"width":        fmt.Sprint(st.Width),
			"height":       fmt.Sprint(st.Height),
			"format":       st.Format,
			"orientation":  st.Orientation,
			"background":   st.Background,
			"transparency": transparency,
			"sharpness":    fmt.Sprintf("%.1f", st.Sharpness),
		},
		Tags: tags,
		Quality: quality{
			Blurry:             st.Blurry,
			BackgroundNotWhite: !st.WhiteBackground,
		},
	}
}
