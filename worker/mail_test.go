package worker_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/finalize"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// An email message runs end to end with the offline provider: the message
// item gets a correspondence digest (from, subject, an action item with
// its deadline, its attachment named, quotes checked), its PDF attachment
// a contract digest, and the contract register lists the attachment only.
func TestEmailMessageIsSummarizedAsCorrespondence(t *testing.T) {
	e := newEnv(t)
	msg, err := os.ReadFile(filepath.Join("..", "jobs", "mailparts", "testdata", "request_with_deadline.eml"))
	if err != nil {
		t.Fatal(err)
	}
	src, outDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "fees.eml"), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	e.startWorker(offline.New(offline.Options{}), 2)
	out, _ := e.open(context.Background(), outDir)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir}})
	entries := e.wait(res.BatchID, out, time.Minute)
	var message, attachment *jobs.Entry
	for i, en := range entries {
		switch {
		case en.Key == "fees.eml" && en.Parent == "":
			message = &entries[i]
		case en.Parent != "":
			attachment = &entries[i]
		}
	}
	if message == nil || attachment == nil || message.Status != jobs.StatusDone || attachment.Status != jobs.StatusDone {
		t.Fatalf("manifest %+v: want the message and its attachment done", entries)
	}
	doc := readJSON(t, out, "fees.eml.summary.json")
	if doc["from"] != "Ana Lima <ana@example.com>" || doc["subject"] != "Fee schedule for 2027" {
		t.Errorf("from %v, subject %v", doc["from"], doc["subject"])
	}
	if _, ok := doc["executive_summary"]; ok {
		t.Error("the message got a contract digest")
	}
	items, _ := doc["action_items"].([]any)
	if len(items) == 0 {
		t.Fatalf("no action item in %v", doc)
	}
	first, _ := items[0].(map[string]any)
	if first["by_when"] != "15 December 2026" || first["check"] != "found" {
		t.Errorf("action item %v: want by 15 December 2026, its quote found", first)
	}
	if att, _ := doc["attachments"].([]any); len(att) != 1 || att[0] != "fees 2027.pdf" {
		t.Errorf("attachments %v", doc["attachments"])
	}
	if qc, _ := doc["quote_check"].(map[string]any); qc["schema"] != "correspondence_digest/1" {
		t.Errorf("quote_check %v", doc["quote_check"])
	}
	if meta, _ := doc["meta"].(map[string]any); meta["prompt_version"] != "correspondence/1" {
		t.Errorf("meta %v", doc["meta"])
	}
	md := readText(t, out, "fees.eml.summary.md")
	for _, want := range []string{"## Subject", "## Action items", "15 December 2026", "## Attachments"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	if pdf := readJSON(t, out, attachment.Results[0]); pdf["executive_summary"] == nil {
		t.Errorf("the attachment's digest is not a contract digest: %v", pdf)
	}
	reg := readText(t, out, finalize.RegisterCSV)
	if strings.Contains(reg, "fees.eml.summary.json") || !strings.Contains(reg, attachment.Results[0]) {
		t.Errorf("register.csv should list the attachment, not the message:\n%s", reg)
	}
}

func readText(t *testing.T, st storage.Store, key string) string {
	t.Helper()
	rc, err := st.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return string(b)
}
