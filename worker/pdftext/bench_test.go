package pdftext

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchFiles: the long documents and the contracts.
func benchFiles(b *testing.B) []string {
	return append(corpusFiles(b, "long"), corpusFiles(b, "contracts")...)
}

// resetPeakRSS resets the kernel's VmHWM for this process (Linux >= 4.0).
// Garbage from earlier sub-benchmarks is returned to the OS first, so the
// peak reflects the measured work plus the resident baseline.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSMB reads VmHWM (peak resident set) of this process in MB.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func extractAll(ctx context.Context, e *Extractor, data []byte) (string, int, error) {
	d, err := e.Open(ctx, data, "")
	if err != nil {
		return "", 0, err
	}
	defer d.Close()
	var sb strings.Builder
	for i := 0; i < d.Pages(); i++ {
		s, err := d.PageText(ctx, i)
		if err != nil {
			return "", 0, err
		}
		sb.WriteString(s)
		sb.WriteString("\n")
	}
	return sb.String(), d.Pages(), nil
}

// BenchmarkExtract: Open + PageText of every page + Close per iteration.
// Metrics: pages/s, peak process RSS (MB) during the sub-benchmark, and the
// whole-document word F1 against pdftotext (when installed).
func BenchmarkExtract(b *testing.B) {
	ctx := context.Background()
	for _, f := range benchFiles(b) {
		data := readFile(b, f)
		b.Run(rel(f), func(b *testing.B) {
			text, pages, err := extractAll(ctx, shared, data)
			if err != nil {
				b.Fatal(err)
			}
			f1 := -1.0
			if havePdftotext() {
				theirs, err := pdftotext(ctx, f, 0, 0)
				if err != nil {
					b.Fatal(err)
				}
				f1 = wordF1(text, theirs)
			}
			resetPeakRSS()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, _, err := extractAll(ctx, shared, data); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(pages*b.N)/el.Seconds(), "pages/s")
			b.ReportMetric(peakRSSMB(), "peakRSS_MB")
			if f1 >= 0 {
				b.ReportMetric(f1, "wordF1")
			}
		})
	}
}

// BenchmarkPdftotext times poppler's pdftotext on the same files (one
// process per iteration, text discarded); peakRSS_MB is the child's.
func BenchmarkPdftotext(b *testing.B) {
	if !havePdftotext() {
		b.Fatal("pdftotext not found: install poppler-utils")
	}
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Fatal("/usr/bin/time not found: install the Debian package time")
	}
	for _, f := range benchFiles(b) {
		b.Run(rel(f), func(b *testing.B) {
			out, err := pdftotext(context.Background(), f, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			pages := strings.Count(out, "\f")
			var maxRSS int64
			start := time.Now()
			for b.Loop() {
				// GNU time forks pdftotext itself, so its %M is
				// pdftotext's own peak RSS (a child started directly from
				// Go inherits the Go process's high-water mark over exec).
				cmd := exec.Command("/usr/bin/time", "-f", "%M", "pdftotext", "-q", "-enc", "UTF-8", f, "-")
				cmd.Stdout = io.Discard
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %s", err, stderr.String())
				}
				lines := strings.Fields(stderr.String())
				if len(lines) > 0 {
					kb, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64)
					maxRSS = max(maxRSS, kb)
				}
			}
			b.ReportMetric(float64(pages*b.N)/time.Since(start).Seconds(), "pages/s")
			b.ReportMetric(float64(maxRSS)/1024, "peakRSS_MB")
		})
	}
}

// BenchmarkNew: Extractor start-up with a warm compilation cache (the
// cache dir is filled once before timing) and a cold one (new dir each time).
func BenchmarkNew(b *testing.B) {
	for _, warm := range []bool{true, false} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			if warm {
				e, err := New(context.Background(), Config{CacheDir: dir})
				if err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
			resetPeakRSS()
			for b.Loop() {
				cd := dir
				if !warm {
					cd = b.TempDir()
				}
				e, err := New(context.Background(), Config{CacheDir: cd})
				if err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
			b.ReportMetric(peakRSSMB(), "peakRSS_MB")
		})
	}
}

// BenchmarkOpenClose: the per-document fixed cost (a fresh PDFium instance
// is instantiated for every Doc) on a 2-page file.
func BenchmarkOpenClose(b *testing.B) {
	data := readFile(b, corpusFiles(b, "text")[0])
	for _, f := range corpusFiles(b, "text") {
		if strings.HasSuffix(f, "issue840.pdf") {
			data = readFile(b, f)
		}
	}
	ctx := context.Background()
	for b.Loop() {
		d, err := shared.Open(ctx, data, "")
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
