package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/llamapipe/llamapipe/storage"
)

// generatePhotos writes b.photos JPEGs (quality 90) with photo-like texture
// — gradients, soft shapes and sensor noise — so they compress like
// photos, not like flat colour. It returns the bytes written.
func (b *bench) generatePhotos(ctx context.Context, open func(context.Context, string) (storage.Store, error), loc string) (int64, error) {
	if b.photos == 0 {
		return 0, nil
	}
	st, err := open(ctx, loc)
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", loc, err)
	}
	var total int64
	var mu sync.Mutex
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	// One photo at a time per core: a 24 MP RGBA is 96 MB.
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				data, err := Photo(b.w, b.h, uint64(b.seed), uint64(i), b.nonce)
				if err == nil {
					err = st.Put(ctx, fmt.Sprintf("IMG_%05d.jpg", i), bytes.NewReader(data), int64(len(data)), "image/jpeg")
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("bench: photo %d: %w", i, err):
					default:
					}
					continue
				}
				mu.Lock()
				total += int64(len(data))
				mu.Unlock()
			}
		}()
	}
	for i := range b.photos {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return total, nil
}

// Photo makes one photo of w×h pixels; its texture depends on seed and index only, and
// nonce is written into the first pixels so that runs never share bytes
// (identical images are captioned once, in any batch).
func Photo(w, h int, seed, index uint64, nonce string) ([]byte, error) {
	rng := mrand.New(mrand.NewPCG(seed, index))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	// A background gradient, three soft blobs of colour and per-pixel noise.
	var c0, c1 [3]float64
	for k := range 3 {
		c0[k], c1[k] = 40+rng.Float64()*180, 40+rng.Float64()*180
	}
	type blob struct {
		x, y, r float64
		col     [3]float64
	}
	blobs := make([]blob, 3)
	for i := range blobs {
		blobs[i] = blob{x: rng.Float64() * float64(w), y: rng.Float64() * float64(h), r: (0.1 + rng.Float64()*0.25) * float64(min(w, h))}
		for k := range 3 {
			blobs[i].col[k] = rng.Float64() * 255
		}
	}
	freq := 2 * math.Pi / (float64(min(w, h)) / (3 + rng.Float64()*6))
	var noise uint64
	for y := range h {
		fy := float64(y) / float64(h)
		row := img.Pix[y*img.Stride:]
		for x := range w {
			t := (fy + float64(x)/float64(w)) / 2
			wave := 18 * math.Sin(float64(x)*freq) * math.Cos(float64(y)*freq*0.7)
			var px [3]float64
			for k := range 3 {
				px[k] = c0[k]*(1-t) + c1[k]*t + wave
			}
			for _, bl := range blobs {
				dx, dy := float64(x)-bl.x, float64(y)-bl.y
				if d2 := dx*dx + dy*dy; d2 < bl.r*bl.r {
					a := 1 - d2/(bl.r*bl.r)
					for k := range 3 {
						px[k] = px[k]*(1-a) + bl.col[k]*a
					}
				}
			}
			if x%2 == 0 {
				noise = rng.Uint64()
			}
			for k := range 3 {
				n := float64(int(noise&0xff)%25 - 12)
				noise >>= 8
				row[x*4+k] = uint8(min(max(px[k]+n, 0), 255))
			}
			row[x*4+3] = 255
		}
	}
	for i := 0; i < len(nonce) && i*4+2 < len(img.Pix); i++ {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2] = nonce[i], nonce[i], nonce[i]
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// generateDocs writes b.docs contract-like documents of b.pages pages
// (about 3,000 characters each, form feeds between pages), alternating
// plain text and Markdown, each different. It returns the bytes written.
func (b *bench) generateDocs(ctx context.Context, open func(context.Context, string) (storage.Store, error), loc string) (int64, error) {
	if b.docs == 0 {
		return 0, nil
	}
	st, err := open(ctx, loc)
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", loc, err)
	}
	var total int64
	for i := range b.docs {
		md := i%2 == 1
		data := Document(i, b.pages, md, uint64(b.seed), b.nonce)
		name, ctype := fmt.Sprintf("contract_%04d.txt", i), "text/plain; charset=utf-8"
		if md {
			name, ctype = fmt.Sprintf("contract_%04d.md", i), "text/markdown; charset=utf-8"
		}
		if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data)), ctype); err != nil {
			return 0, fmt.Errorf("bench: document %d: %w", i, err)
		}
		total += int64(len(data))
	}
	return total, nil
}

// clauses and names are the words of the generated contracts.
var clauses = []string{
	"The Supplier shall deliver the Goods to the Customer's premises within %d days of each purchase order.",
	"The Customer shall pay each invoice within %d days of receipt; late payments bear interest at %d%% per annum.",
	"Either party may terminate this Agreement on %d days' written notice if the other party materially breaches it.",
	"The liability of each party under this Agreement is limited to %d times the fees paid in the preceding %d months.",
	"The Receiving Party shall keep the Confidential Information secret for %d years after termination.",
	"This Agreement renews automatically for successive terms of %d months unless either party gives notice.",
	"The Supplier shall indemnify the Customer against all claims arising from defects in the Goods, up to %d euros.",
	"Any dispute shall be settled by arbitration in %d rounds under the rules of the chamber of commerce.",
	"Service credits of %d%% of the monthly fee apply for each hour of downtime beyond the first %d hours.",
}

var names = []string{"Acme Components GmbH", "Borealis Trading Ltd", "Castellan Logistics SA", "Dunmore Analytics Inc",
	"Elbe Office Supplies KG", "Fjord Maritime AS", "Granite Peak Software LLC", "Helios Energy BV"}

// Document makes the i-th contract of pages pages (Markdown when md); its
// words depend on seed and i only, and nonce is in its title.
func Document(i, pages int, md bool, seed uint64, nonce string) []byte {
	rng := mrand.New(mrand.NewPCG(seed, uint64(i)+1<<32))
	a, b := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
	var sb strings.Builder
	if md {
		fmt.Fprintf(&sb, "# Supply Agreement %d-%d-%s\n\nBetween **%s** (the Supplier) and **%s** (the Customer).\n\n", i, rng.IntN(1e6), nonce, a, b)
	} else {
		fmt.Fprintf(&sb, "SUPPLY AGREEMENT %d-%d-%s\n\nThis Agreement is made between %s (the Supplier) and %s (the Customer).\n\n", i, rng.IntN(1e6), nonce, a, b)
	}
	for p := 1; p <= pages; p++ {
		if p > 1 {
			sb.WriteString("\f")
		}
		start := sb.Len()
		section := 0
		for sb.Len()-start < 3000 {
			section++
			if md {
				fmt.Fprintf(&sb, "## %d.%d Section\n\n", p, section)
			} else {
				fmt.Fprintf(&sb, "%d.%d ", p, section)
			}
			for range 3 + rng.IntN(3) {
				cl := clauses[rng.IntN(len(clauses))]
				args := make([]any, strings.Count(cl, "%d"))
				for k := range args {
					args[k] = 1 + rng.IntN(90)
				}
				sb.WriteString(fmt.Sprintf(cl, args...))
				sb.WriteString(" ")
			}
			sb.WriteString("\n\n")
		}
	}
	return []byte(sb.String())
}
