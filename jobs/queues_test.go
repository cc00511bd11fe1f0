package jobs_test

import (
	"maps"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

func TestParseQueueWeights(t *testing.T) {
	got, err := jobs.ParseQueueWeights("critical=6, default=3,nightly=1")
	if err != nil || !maps.Equal(got, map[string]int{"critical": 6, "default": 3, "nightly": 1}) {
		t.Fatalf("%v, %v", got, err)
	}
	for _, bad := range []string{"", "critical", "critical=0", "urgent=2", "default=x"} {
		if _, err := jobs.ParseQueueWeights(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
