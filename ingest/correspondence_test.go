package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/prompts"
)

// An email message's fingerprint names the correspondence prompt; a text
// document's (and the message's attachment's) still names the contract
// prompts, so only .eml items are summarized again.
func TestEmailFingerprintNamesTheCorrespondencePrompt(t *testing.T) {
	msg, err := os.ReadFile(filepath.Join("..", "jobs", "mailparts", "testdata", "request_with_deadline.eml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write(t, dir, "fees.eml", msg)
	write(t, dir, "lease.txt", []byte("The tenant pays rent monthly."))
	contract, err := prompts.TaskVersion(jobs.TaskSummarize)
	if err != nil {
		t.Fatal(err)
	}
	in := &ingest.Ingester{Open: open}
	var mu sync.Mutex
	got := map[string]ingest.Item{}
	_, err = in.Scan(context.Background(), ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: filepath.Join(t.TempDir(), "out"), Task: jobs.TaskAuto}},
		func(it ingest.Item) error {
			mu.Lock()
			defer mu.Unlock()
			got[it.ResultBase] = it
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for base, want := range map[string]string{"fees.eml": "correspondence/1", "lease.txt": contract} {
		it, ok := got[base]
		if !ok {
			t.Fatalf("%s not scanned: %v", base, got)
		}
		if fp := fingerprint.Of(it.Ref.ETag, jobs.TaskSummarize, want, "", jobs.Options{}); it.Fingerprint != fp {
			t.Errorf("%s: fingerprint %s, want the one naming %s (%s)", base, it.Fingerprint, want, fp)
		}
	}
}
