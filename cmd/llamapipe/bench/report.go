package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
)

func (b *bench) rows(runs []batchRun, rss, baseRSS int64, rssErr error, rssReset bool) []row {
	var rows []row
	add := func(metric, value, note string) { rows = append(rows, row{metric, value, note}) }
	model := "offline provider (in process)"
	if b.provider == llm.ProviderOpenAI {
		model = fmt.Sprintf("fake OpenAI-compatible server on loopback: latency %s ± %s, faults %.0f%% (429/500/garbage), hangs %.0f%%",
			b.latency, b.jitter, b.faultRate*100, b.hangRate*100)
	}
	add("setup", fmt.Sprintf("%d worker(s) × concurrency %d", b.workers, b.conc), model+fmt.Sprintf("; seed %d", b.seed))
	var items, done, objects, requests int64
	var work, cpu time.Duration
	var all []int64
	for _, r := range runs {
		items += int64(r.items)
		done += int64(r.done)
		work += r.work
		cpu += r.cpu
		requests += r.model.Requests
		all = append(all, r.durations...)
		objects += r.objects
		what := fmt.Sprintf("%d JPEG %dx%d", r.objects, b.w, b.h)
		if r.kind == "documents" {
			what = fmt.Sprintf("%d txt/md × %d pages", r.objects, b.pages)
		}
		add("input: "+r.kind, what, fmt.Sprintf("%s total, generated in process", humanBytes(r.bytes)))
	}
	add("items done", fmt.Sprintf("%d / %d", done, items), fmt.Sprintf("%d extra attempts (retries)", sumExtra(runs)))
	for _, r := range runs {
		add("ingest rate: "+r.kind, fmt.Sprintf("%.0f items/s", float64(r.items)/r.ingest.Seconds()),
			fmt.Sprintf("list + sniff + enqueue of %d items in %s, no workers running", r.items, r.ingest.Round(time.Millisecond)))
	}
	for _, r := range runs {
		add("throughput: "+r.kind, fmt.Sprintf("%.2f items/s", float64(r.done)/r.work.Seconds()),
			fmt.Sprintf("%d items in %s from worker start to the last item; manifest %s later", r.done, r.work.Round(time.Millisecond), r.finalize.Round(time.Millisecond)))
	}
	if len(runs) > 1 {
		add("throughput: all", fmt.Sprintf("%.2f items/s", float64(done)/work.Seconds()), "both batches, processing time only")
	}
	if b.provider == llm.ProviderOpenAI && work > 0 {
		ideal := float64(b.workers*b.conc) / b.latency.Seconds()
		label := "C ÷ latency"
		if b.workers > 1 {
			label = "workers × C ÷ latency"
		}
		var faults, maxIn int64
		for _, r := range runs {
			faults += r.model.Faults()
			maxIn = max(maxIn, r.model.MaxInFlight)
		}
		add("model requests/s", fmt.Sprintf("%.1f", float64(requests)/work.Seconds()),
			fmt.Sprintf("ideal %s = %.1f (%.0f%%); %d requests, %d faults, at most %d at once",
				label, ideal, 100*float64(requests)/work.Seconds()/ideal, requests, faults, maxIn))
	}
	for _, r := range runs {
		p50, p99 := percentile(r.durations, 50), percentile(r.durations, 99)
		add("item latency p50 / p99: "+r.kind, fmt.Sprintf("%d / %d ms", p50, p99), "manifest duration_ms of done items (the final attempt; not queue wait or retry delays)")
	}
	if len(runs) > 1 {
		add("item latency p50 / p99: all", fmt.Sprintf("%d / %d ms", percentile(all, 50), percentile(all, 99)), "")
	}
	includes := "includes the fake server"
	if b.provider == llm.ProviderOffline {
		includes = "includes the offline model's work"
	}
	for _, r := range runs {
		switch r.kind {
		case "photos":
			add("CPU per image", fmt.Sprintf("%.4f s", r.cpu.Seconds()/float64(max(r.done, 1))), "user+sys of the process while the photo batch ran ("+includes+")")
		case "documents":
			add("CPU per page", fmt.Sprintf("%.5f s", r.cpu.Seconds()/float64(max(r.done, 1)*b.pages)), fmt.Sprintf("%.4f s per document", r.cpu.Seconds()/float64(max(r.done, 1))))
		}
	}
	if done > 0 {
		add("CPU per item", fmt.Sprintf("%.4f s", cpu.Seconds()/float64(done)), "all batches")
	}
	note := fmt.Sprintf("VmHWM of this process (workers, fake server, Redis client) after input generation; %s when processing began", humanBytes(baseRSS))
	if !rssReset {
		note = "VmHWM of this process, including input generation (the peak could not be reset)"
	}
	if rssErr != nil {
		add("peak RSS", "n/a", rssErr.Error())
	} else {
		add("peak RSS", humanBytes(rss), note)
	}
	return rows
}

func sumExtra(runs []batchRun) int {
	n := 0
	for _, r := range runs {
		n += r.extraAttempts
	}
	return n
}

func percentile(ms []int64, p int) int64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func humanBytes(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a size field (VmHWM:, VmRSS:) of /proc/self/status
// (Linux), in bytes.
func procStatus(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no %s in /proc/self/status", field)
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0+).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
