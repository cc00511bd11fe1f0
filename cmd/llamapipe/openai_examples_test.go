package main

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
)

// TestRunExamplesAgainstOpenAICompatibleServer is the acceptance
// line: `llamapipe run examples/ --provider openai --base-url ... --model
// llama-4-scout` produces results for every item. The fake server checks
// each request's shape (images as decodable data URLs) and answers with
// JSON valid for the schema asked.
func TestRunExamplesAgainstOpenAICompatibleServer(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	fs := fakeserver.New(fakeserver.Options{APIKey: "sk-test"})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	defer fs.Close()
	t.Setenv("LLAMAPIPE_API_KEY", "sk-test")
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "--redis-url", url, "run", "../../examples", "--out", out,
		"--provider", "openai", "--base-url", srv.URL+"/v1", "--model", "llama-4-scout")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	st := fs.Stats()
	if st.BadRequests != 0 || st.Images < 3 {
		t.Errorf("fake server: %d bad requests, %d images seen", st.BadRequests, st.Images)
	}
	for _, e := range manifest(t, filepath.Join(out, "manifest.jsonl")) {
		if e.Status != jobs.StatusDone || e.Model != "llama-4-scout" || e.InputTokens == 0 {
			t.Errorf("%s: %+v", e.Source, e)
		}
	}
}
