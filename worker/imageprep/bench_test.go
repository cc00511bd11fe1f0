package imageprep

import (
	"bytes"
	"context"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disintegration/imaging"

	"github.com/llamapipe/llamapipe/jobs"
)

// Benchmarks over ../shared/corpus/images/photos (14 JPEGs, 4.1–24 MP).
// Run them with ./bench.sh; BENCH.md has the numbers. CPU time comes from
// getrusage, so it counts every thread (imaging resizes in parallel), and
// "images/cpu-s" is the per-core throughput to compare with vipsthumbnail.

type photo struct {
	name string
	data []byte
}

func photoNames(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(corpusDir(tb), "photos"))
	if err != nil {
		tb.Fatalf("photos: %v", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".jpg") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		tb.Fatalf("no photos in the corpus")
	}
	return names
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func maxRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

// BenchmarkPreparePhotos: sub-benchmark "all" cycles through every photo
// (use -benchtime as a multiple of 14x); one sub-benchmark per photo, run
// alone (-bench 'PreparePhotos/Painting'), gives that photo's own peak RSS.
func BenchmarkPreparePhotos(b *testing.B) {
	names := photoNames(b)
	run := func(b *testing.B, set []string) {
		photos := make([]photo, len(set))
		for i, n := range set {
			photos[i] = photo{n, readCorpus(b, filepath.Join("photos", n))}
		}
		ctx := context.Background()
		runtime.GC()
		b.ResetTimer()
		cpu0, start := cpuTime(), time.Now()
		for i := 0; i < b.N; i++ {
			p := photos[i%len(photos)]
			if _, err := Prepare(ctx, p.data, Options{}); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
		}
		wall, cpu := time.Since(start), cpuTime()-cpu0
		b.StopTimer()
		b.ReportMetric(float64(b.N)/wall.Seconds(), "images/s")
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/image")
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "images/cpu-s")
		b.ReportMetric(maxRSSMB(), "peak-rss-MB")
	}
	b.Run("all", func(b *testing.B) { run(b, names) })
	for _, n := range names {
		b.Run(strings.TrimSuffix(n, ".jpg"), func(b *testing.B) { run(b, []string{n}) })
	}
}

// BenchmarkVipsthumbnail times Debian's vipsthumbnail (libvips-tools) on the
// same photos with the same target: one process per iteration converting
// all 14 photos ("all", startup amortised), or one process per photo
// ("per-file"). CPU and peak RSS are the child's.
func BenchmarkVipsthumbnail(b *testing.B) {
	bin, err := exec.LookPath("vipsthumbnail")
	if err != nil {
		b.Skip("vipsthumbnail not installed (Debian package libvips-tools); nothing to compare with")
	}
	dir := filepath.Join(corpusDir(b), "photos")
	var paths []string
	for _, n := range photoNames(b) {
		paths = append(paths, filepath.Join(dir, n))
	}
	out := b.TempDir()
	runVips := func(b *testing.B, files []string) (cpu time.Duration, rssMB float64) {
		args := append([]string{"--size", "1344", "-o", filepath.Join(out, "%s.jpg[Q=85]")}, files...)
		cmd := exec.Command(bin, args...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("vipsthumbnail: %v: %s", err, msg)
		}
		st := cmd.ProcessState
		ru, _ := st.SysUsage().(*syscall.Rusage)
		if ru != nil {
			rssMB = float64(ru.Maxrss) / 1024
		}
		return st.UserTime() + st.SystemTime(), rssMB
	}
	report := func(b *testing.B, images int, wall, cpu time.Duration, rss float64) {
		b.ReportMetric(float64(images)/wall.Seconds(), "images/s")
		b.ReportMetric(cpu.Seconds()/float64(images), "cpu-s/image")
		b.ReportMetric(float64(images)/cpu.Seconds(), "images/cpu-s")
		b.ReportMetric(rss, "peak-rss-MB")
	}
	b.Run("all", func(b *testing.B) {
		var cpu time.Duration
		var rss float64
		start := time.Now()
		for i := 0; i < b.N; i++ {
			c, r := runVips(b, paths)
			cpu += c
			rss = max(rss, r)
		}
		report(b, b.N*len(paths), time.Since(start), cpu, rss)
	})
	b.Run("per-file", func(b *testing.B) {
		var cpu time.Duration
		var rss float64
		start := time.Now()
		for i := 0; i < b.N; i++ {
			c, r := runVips(b, paths[i%len(paths):i%len(paths)+1])
			cpu += c
			rss = max(rss, r)
		}
		report(b, b.N, time.Since(start), cpu, rss)
	})
}

// BenchmarkScaledDecodeQuality measures what decoding at a reduced DCT scale
// and resizing in fixed point (resizeOpaque) cost in fidelity: for each
// photo, PSNR (RGB, dB) of the resized picture Prepare makes against a
// full-size decode resized with imaging's Lanczos in floating point.
// Reported: the mean and the worst photo. (With the pure-Go backend both are
// the same picture and the metrics are +Inf.)
func BenchmarkScaledDecodeQuality(b *testing.B) {
	names := photoNames(b)
	for i := 0; i < b.N; i++ {
		var sum, worst float64 = 0, math.Inf(1)
		for _, n := range names {
			data := readCorpus(b, filepath.Join("photos", n))
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			tw, th := fit(cfg.Width, cfg.Height, DefaultMaxSide)
			full, err := decodeJPEG(data, cfg, cfg.Width, cfg.Height, DefaultMaxPixels)
			if err != nil {
				b.Fatal(err)
			}
			ref := imaging.Resize(full, tw, th, resizeFilter)
			src, err := decode(jobs.FileJPEG, data, cfg, heifInfo{}, tw, th, DefaultMaxPixels)
			if err != nil {
				b.Fatal(err)
			}
			got := resize(src, tw, th) // as Prepare resizes an opaque picture
			var se float64
			for j := 0; j < len(ref.Pix); j += 4 {
				for c := 0; c < 3; c++ {
					d := float64(ref.Pix[j+c]) - float64(got.Pix[j+c])
					se += d * d
				}
			}
			p := 10 * math.Log10(255*255/(se/float64(len(ref.Pix)/4*3)))
			if b.N == 1 {
				b.Logf("%s: source %dx%d decoded at %dx%d: %.1f dB", n, cfg.Width, cfg.Height, src.Bounds().Dx(), src.Bounds().Dy(), p)
			}
			sum += p
			worst = min(worst, p)
		}
		b.ReportMetric(sum/float64(len(names)), "mean-PSNR-dB")
		b.ReportMetric(worst, "worst-PSNR-dB")
	}
}

// BenchmarkPrepareVsVipsthumbnail is the row in one run: each
// iteration prepares the 14 photos in this process and has vipsthumbnail
// make the same thumbnails (one process for the 14), alternating, and
// reports both per-core throughputs and their ratio (target ≥ 1), with
// each side's peak RSS. The fidelity of Prepare's output is
// BenchmarkScaledDecodeQuality's. Run: go test -run '^$' -bench
// PrepareVsVipsthumbnail -benchtime 3x ./worker/imageprep/
func BenchmarkPrepareVsVipsthumbnail(b *testing.B) {
	bin, err := exec.LookPath("vipsthumbnail")
	if err != nil {
		b.Fatal("vipsthumbnail not installed (Debian package libvips-tools): nothing to compare with")
	}
	names := photoNames(b)
	dir := filepath.Join(corpusDir(b), "photos")
	var paths []string
	photos := make([][]byte, len(names))
	for i, n := range names {
		paths = append(paths, filepath.Join(dir, n))
		photos[i] = readCorpus(b, filepath.Join("photos", n))
	}
	out := b.TempDir()
	ctx := context.Background()
	var ours, theirs time.Duration
	var vipsRSS float64
	for range b.N {
		c, err := CompareVipsthumbnail(ctx, bin, photos, paths, out)
		if err != nil {
			b.Fatal(err)
		}
		ours += c.Ours
		theirs += c.Vips
		vipsRSS = max(vipsRSS, float64(c.VipsRSS)/(1<<20))
	}
	n := float64(b.N * len(photos))
	b.ReportMetric(n/ours.Seconds(), "images/cpu-s")
	b.ReportMetric(n/theirs.Seconds(), "vips-images/cpu-s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-vipsthumbnail")
	b.ReportMetric(maxRSSMB(), "peak-rss-MB")
	b.ReportMetric(vipsRSS, "vips-peak-rss-MB")
}
