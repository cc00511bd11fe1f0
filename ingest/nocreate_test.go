package ingest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
)

// A source that does not exist is refused before any batch exists, and is
// not created; neither is the output.
func TestMissingSourceIsRefusedNotCreated(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	dir := t.TempDir()
	src, out := filepath.Join(dir, "no-such", "src"), filepath.Join(dir, "out")
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr}
	res, err := in.Run(ctx, ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: out}, BatchID: "b-missing-source"})
	if !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), "source "+src) || !strings.Contains(err.Error(), src+" does not exist") {
		t.Fatalf("Run: %+v, %v; want source %s ... does not exist", res, err, src)
	}
	if _, err := tr.Get(ctx, "b-missing-source"); !errors.Is(err, jobs.ErrNoBatch) {
		t.Errorf("a batch was created for a missing source: %v", err)
	}
	for _, p := range []string{filepath.Join(dir, "no-such"), out} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after the refused run: %v", p, err)
		}
	}
}
