package main

import (
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func TestBenchUnchangedCatalogMakesNoModelCalls(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBBench)
	code, stdout, stderr := runCLI(t, "--redis-url", url, "bench", "--measure", "unchanged", "--catalog", "60", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"| skipped as unchanged | 60 |", "| model calls | 0 |", "| re-run to manifest |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
