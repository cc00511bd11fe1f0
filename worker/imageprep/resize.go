package imageprep

import (
	"image"
	"math"

	"github.com/disintegration/imaging"
)

// resizeOpaque resizes an opaque RGBA or Gray picture (what the JPEG
// decoder gives) to w x h with the Lanczos-3 kernel, the same filter and
// weights as imaging.Resize (resizeFilter), in fixed point on the colour
// channels only, in one goroutine. It is about three times cheaper in CPU
// than imaging.Resize, which converts every pixel to float64 RGBA and splits
// the work over goroutines (BENCH.md). ok is false for any other picture
// type, for which the caller falls back to imaging.
func resizeOpaque(src image.Image, w, h int) (out *image.NRGBA, ok bool) {
	var pix []byte
	var stride, comps int
	b := src.Bounds()
	switch m := src.(type) {
	case *image.RGBA:
		pix, stride, comps = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4
	case *image.Gray:
		pix, stride, comps = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1
	default:
		return nil, false
	}
	sw, sh := b.Dx(), b.Dy()
	if sw <= 0 || sh <= 0 || w <= 0 || h <= 0 {
		return nil, false
	}
	ch := 3 // channels kept between the passes
	if comps == 1 {
		ch = 1
	}
	// Horizontal pass: every source row to w pixels of ch channels.
	hw := weightsFor(w, sw)
	tmpLen := w * ch * sh
	tmp := make([]byte, tmpLen)
	for y := range sh {
		row := pix[y*stride:]
		dst := tmp[y*w*ch : (y+1)*w*ch]
		if comps == 4 {
			for x := range w {
				var r, g, bl int32
				start, ws := hw.at(x)
				s := row[start*4 : (start+len(ws))*4]
				for _, wt := range ws {
					_ = s[3]
					r += int32(s[0]) * wt
					g += int32(s[1]) * wt
					bl += int32(s[2]) * wt
					s = s[4:]
				}
				d := dst[x*3 : x*3+3 : x*3+3]
				d[0], d[1], d[2] = clampFixed(r), clampFixed(g), clampFixed(bl)
			}
			continue
		}
		for x := range w {
			var v int32
			start, ws := hw.at(x)
			s := row[start : start+len(ws)]
			for i, wt := range ws {
				v += int32(s[i]) * wt
			}
			dst[x] = clampFixed(v)
		}
	}
	// Vertical pass: rows of tmp weighted into each output row.
	vw := weightsFor(h, sh)
	out = image.NewNRGBA(image.Rect(0, 0, w, h))
	acc := make([]int32, w*ch)
	for y := range h {
		clear(acc)
		start, ws := vw.at(y)
		for i, wt := range ws {
			srow := tmp[(start+i)*w*ch : (start+i+1)*w*ch]
			a := acc[:len(srow)]
			for x, v := range srow {
				a[x] += int32(v) * wt
			}
		}
		d := out.Pix[y*out.Stride : y*out.Stride+w*4]
		if ch == 3 {
			for x := range w {
				p := d[x*4 : x*4+4 : x*4+4]
				p[0], p[1], p[2], p[3] = clampFixed(acc[x*3]), clampFixed(acc[x*3+1]), clampFixed(acc[x*3+2]), 0xFF
			}
			continue
		}
		for x := range w {
			v := clampFixed(acc[x])
			p := d[x*4 : x*4+4 : x*4+4]
			p[0], p[1], p[2], p[3] = v, v, v, 0xFF
		}
	}
	return out, true
}

// fixedBits is the fixed-point precision of the weights: each output
// pixel's weights sum to exactly 1<<fixedBits.
const fixedBits = 14

func clampFixed(v int32) uint8 {
	v = (v + 1<<(fixedBits-1)) >> fixedBits
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v)
}

// weights are the per-output-pixel source spans and fixed-point weights of
// one axis.
type weights struct {
	start, n []int32 // first source pixel and number of taps per output pixel
	off      []int32 // where each output pixel's weights begin in w
	w        []int32
}

func (ws *weights) at(i int) (start int, w []int32) {
	o := ws.off[i]
	return int(ws.start[i]), ws.w[o : o+ws.n[i]]
}

// weightsFor computes the Lanczos-3 weights for resizing srcSize pixels to
// dstSize, as imaging's precomputeWeights does (same centres, support and
// normalisation), rounded to fixed point with the rounding error put on the
// largest weight.
func weightsFor(dstSize, srcSize int) *weights {
	du := float64(srcSize) / float64(dstSize)
	scale := max(du, 1)
	ru := math.Ceil(scale * resizeFilter.Support)
	ws := &weights{start: make([]int32, dstSize), n: make([]int32, dstSize), off: make([]int32, dstSize)}
	ws.w = make([]int32, 0, dstSize*int(2*ru+1))
	var fw []float64
	for v := range dstSize {
		fu := (float64(v)+0.5)*du - 0.5
		begin := max(int(math.Ceil(fu-ru)), 0)
		end := min(int(math.Floor(fu+ru)), srcSize-1)
		fw = fw[:0]
		var sum float64
		first, last := -1, -1
		for u := begin; u <= end; u++ {
			k := resizeFilter.Kernel((float64(u) - fu) / scale)
			if k != 0 && first < 0 {
				first = u
			}
			if k != 0 {
				last = u
			}
			fw = append(fw, k)
			sum += k
		}
		if first < 0 { // cannot happen for Lanczos; keep the nearest pixel
			first, last, fw, sum = min(max(int(math.Round(fu)), 0), srcSize-1), 0, append(fw[:0], 1), 1
			last = first
			begin = first
		}
		fw = fw[first-begin : last-begin+1]
		ws.start[v], ws.n[v], ws.off[v] = int32(first), int32(len(fw)), int32(len(ws.w))
		total, big := int32(0), 0
		for i, k := range fw {
			q := int32(math.Round(k / sum * (1 << fixedBits)))
			ws.w = append(ws.w, q)
			total += q
			if math.Abs(k) > math.Abs(fw[big]) {
				big = i
			}
		}
		ws.w[int(ws.off[v])+big] += 1<<fixedBits - total
	}
	return ws
}

// resize resizes src to w x h with resizeFilter: resizeOpaque when it can,
// else imaging.Resize.
func resize(src image.Image, w, h int) *image.NRGBA {
	if m, ok := resizeOpaque(src, w, h); ok {
		return m
	}
	return imaging.Resize(src, w, h, resizeFilter)
}
