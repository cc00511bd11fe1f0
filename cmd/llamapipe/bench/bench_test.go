package bench

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/worker/pdfsplit"
	"github.com/llamapipe/llamapipe/worker/pdftext"
)

func goodOptions() Options {
	return Options{Photos: 2, PhotoSize: "640x480", Docs: 1, Pages: 1, Workers: 1, Concurrency: 2,
		Provider: "openai", Measure: "all", Catalog: 10, EnqueueTasks: 10, EnqueueGoroutines: 2}
}

func TestCheckRefusesBadOptions(t *testing.T) {
	if err := goodOptions().Check(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for name, bad := range map[string]func(*Options){
		"photo size":        func(o *Options) { o.PhotoSize = "big" },
		"tiny photo":        func(o *Options) { o.PhotoSize = "8x8" },
		"provider":          func(o *Options) { o.Provider = "bedrock" },
		"fault rate":        func(o *Options) { o.FaultRate = 2 },
		"measure":           func(o *Options) { o.Measure = "everything" },
		"no inputs":         func(o *Options) { o.Photos, o.Docs = 0, 0 },
		"no pages":          func(o *Options) { o.Pages = 0 },
		"no workers":        func(o *Options) { o.Workers = 0 },
		"no enqueue tasks":  func(o *Options) { o.EnqueueTasks = 0 },
		"negative hangrate": func(o *Options) { o.HangRate = -0.1 },
	} {
		o := goodOptions()
		bad(&o)
		var ue *UsageError
		if err := o.Check(); !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "bench: ") {
			t.Errorf("%s: %v, want a *UsageError starting with bench:", name, err)
		}
	}
	// Enqueue and unchanged measure without generated inputs.
	o := goodOptions()
	o.Photos, o.Docs, o.Measure = 0, 0, "enqueue"
	if err := o.Check(); err != nil {
		t.Errorf("--measure enqueue without inputs: %v", err)
	}
}

func TestPhotoIsAJPEGOfItsSeedAndNonce(t *testing.T) {
	a, err := Photo(64, 48, 1, 0, "n1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(a))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("decoded %v, %v; want a 64x48 JPEG", img.Bounds(), err)
	}
	b, _ := Photo(64, 48, 1, 0, "n1")
	c, _ := Photo(64, 48, 1, 0, "n2")
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("want the same bytes for the same seed and nonce, and different bytes for another nonce")
	}
}

func TestDocumentHasItsPages(t *testing.T) {
	d := string(Document(3, 4, true, 7, "nonce"))
	if n := strings.Count(d, "\f"); n != 3 {
		t.Errorf("%d form feeds, want 3 (4 pages)", n)
	}
	if !strings.HasPrefix(d, "# Supply Agreement 3-") || !strings.Contains(d, "nonce") || len(d) < 4*3000 {
		t.Errorf("document starts %q, %d bytes", d[:40], len(d))
	}
	if string(Document(3, 4, true, 7, "nonce")) != d {
		t.Error("the same seed made another document")
	}
}

func TestPercentileAndBytes(t *testing.T) {
	ms := []int64{50, 10, 40, 20, 30}
	if p50, p99 := percentile(ms, 50), percentile(ms, 99); p50 != 30 || p99 != 50 {
		t.Errorf("p50 %d, p99 %d; want 30, 50", p50, p99)
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	for n, want := range map[int64]string{512: "512 B", 2048: "2.0 KB", 3 << 20: "3.0 MB", 12 << 30: "12.0 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The generated PDF has its pages, and pdfium reads their text.
func TestPDFHasItsPagesAndText(t *testing.T) {
	data := PDF(2, 3, 7, "nonce")
	info, err := pdfsplit.Inspect(data, "")
	if err != nil || info.Pages != 3 {
		t.Fatalf("Inspect: %+v, %v; want 3 pages", info, err)
	}
	ex, err := pdftext.New(context.Background(), pdftext.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	doc, err := ex.Open(context.Background(), data, "")
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	for i := range doc.Pages() {
		text, err := doc.PageText(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		if len(text) < 2500 || (i == 0 && (!strings.Contains(text, "SUPPLY AGREEMENT 2-") || !strings.Contains(text, "nonce"))) {
			t.Errorf("page %d: %d characters starting %q", i+1, len(text), text[:min(80, len(text))])
		}
	}
}
