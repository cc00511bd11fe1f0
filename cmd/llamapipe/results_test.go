package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// TestRunKeepsTextAndWritesTheRegister: `run --keep-text` with the offline
// model keeps each document's text beside its digest, the digest's quotes
// are all found on their pages, and the batch's register lists it.
func TestRunKeepsTextAndWritesTheRegister(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	text := "SERVICES AGREEMENT\n\nThis Agreement is made between Acme Ltd and Beta GmbH. The Customer shall pay each invoice within thirty days. " +
		"This Agreement is governed by the laws of England. Either party may terminate this Agreement on ninety days written notice.\n"
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "--redis-url", url, "run", src, "--out", out, "--keep-text")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	es := manifest(t, filepath.Join(out, "manifest.jsonl"))
	if len(es) != 1 || es[0].Status != jobs.StatusDone || len(es[0].Results) != 4 {
		t.Fatalf("manifest %+v", es)
	}
	kept, err := os.ReadFile(filepath.Join(out, "a.txt.text.md"))
	if err != nil || !strings.Contains(string(kept), "The Customer shall pay each invoice within thirty days.") {
		t.Errorf("text.md: %v\n%s", err, kept)
	}
	if _, err := os.Stat(filepath.Join(out, "a.txt.chunks.jsonl")); err != nil {
		t.Error(err)
	}
	digest, err := os.ReadFile(filepath.Join(out, "a.txt.summary.json"))
	if err != nil || !strings.Contains(string(digest), `"unverified": 0`) || !strings.Contains(string(digest), `"check": "found"`) {
		t.Errorf("offline digest's quotes not all found:\n%s", digest)
	}
	reg, err := os.ReadFile(filepath.Join(out, "register.csv"))
	if err != nil || !strings.HasPrefix(string(reg), "\ufeffsource,") || !strings.Contains(string(reg), "a.txt.summary.json") {
		t.Errorf("register.csv: %v\n%s", err, reg)
	}
}
