package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// `bench --measure targets` prints each row of issue 16's table, each with
// llamapipe's number, its reference's and their ratio, measured in one run
// (tiny sizes: the values mean nothing here, only that each is measured).
func TestBenchTargetsPrintsEveryRow(t *testing.T) {
	url, _ := jobstest.Redis(t, dbBench)
	code, stdout, stderr := runCLI(t, "--redis-url", url, "bench", "--measure", "targets", "--out", t.TempDir(),
		"--photos", "2", "--photo-size", "320x240", "--docs", "4", "--pages", "1", "-c", "4", "--latency", "20ms", "--jitter", "5ms",
		"--enqueue-tasks", "500", "--catalog", "30", "--seed", "7")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	const header = "| what | llamapipe | reference (same run) | ratio | target |\n|---|---:|---:|---:|---|\n"
	if !strings.HasPrefix(stdout, header) {
		t.Fatalf("output does not start with the targets header:\n%s", stdout)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(strings.TrimPrefix(stdout, header)), "\n") {
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 5 {
			t.Fatalf("row %q does not have 5 cells", line)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[cells[0]] = cells[1:]
	}
	num := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\b`)
	for _, what := range []string{"pipeline to a folder on", "image preparation, images per CPU-second",
		"Redis per queued task", "enqueue rate", "re-run over an unchanged catalog of 30 images", "long PDF"} {
		var cells []string
		for w, c := range rows {
			if strings.HasPrefix(w, what) {
				cells = c
			}
		}
		if cells == nil {
			t.Errorf("no row %q", what)
			continue
		}
		ours, ref, ratio := cells[0], cells[1], cells[2]
		if what == "Redis per queued task" && strings.HasPrefix(ours, "n/a (Redis memory did not grow") {
			// The test Redis is shared with other packages' tests: its
			// memory may shrink meanwhile (as in TestBenchEndToEnd).
			continue
		}
		if what == "image preparation, images per CPU-second" && strings.HasPrefix(ref, "vipsthumbnail not installed") {
			ref, ratio = "0", "0"
		}
		if !num.MatchString(ours) || !num.MatchString(ref) || !num.MatchString(ratio) {
			t.Errorf("%s: llamapipe %q, reference %q, ratio %q: want a number in each", what, ours, ref, ratio)
		}
	}
	if len(rows) != 6 {
		t.Errorf("%d rows, want 6", len(rows))
	}
}
