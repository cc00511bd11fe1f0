package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/plan"
)

// strictJSON decodes s into v, refusing fields v does not have: the shape
// is clix's (pinned by its golden files), nothing more.
func strictJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not the --json shape %T: %v\n%s", v, err, s)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "llamapipe version ") || !strings.Contains(stdout, "go1.") {
			t.Errorf("%v: exit %d %q %q", args, code, stdout, stderr)
		}
	}
	code, stdout, _ := runCLI(t, "version", "--json")
	var v clix.Version
	strictJSON(t, stdout, &v)
	if code != 0 || v.Go == "" || v.Module == "" {
		t.Errorf("version --json: exit %d %+v", code, v)
	}
}

func TestExitCodes(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"run", "--no-such-flag", "x"}, exitUsage, "no-such-flag"},
		{[]string{"no-such-command"}, exitUsage, "unknown command"},
		{[]string{"plan", "--max-size", "ten", "."}, exitUsage, "not a size"},
		{[]string{"batches", "--state", "ingesting", "--redis-url", "redis://127.0.0.1:1/0"}, exitUsage, "--state"},
		{[]string{"plan", missing}, exitRefused, "does not exist"},
		{[]string{"ingest", missing, "--out", t.TempDir(), "--redis-url", url}, exitRefused, "does not exist"},
		{[]string{"run", missing, "--out", t.TempDir()}, exitRefused, "does not exist"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d, want %d; stderr %q should say %q", c.args, code, c.code, stderr, c.says)
		}
		// stderr is not a terminal here: the error is a JSON log record.
		var rec map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(stderr)), &rec); err != nil || rec["level"] != "ERROR" {
			t.Errorf("%v: stderr is not one JSON record: %q", c.args, stderr)
		}
	}
	code, stdout, _ := runCLI(t, "--help")
	if code != 0 || !strings.Contains(stdout, "3  not started: a source does not exist") || !strings.Contains(stdout, "2  usage error") || !strings.Contains(stdout, "completion bash") {
		t.Errorf("--help lacks the exit codes or completion: %s", stdout)
	}
	code, stdout, _ = runCLI(t, "run", "--help")
	for _, cat := range []string{clix.CatBatch, clix.CatWorker, clix.CatModel, clix.CatTenancy, clix.CatOutput} {
		if code != 0 || !strings.Contains(stdout, "\n   "+cat+"\n") {
			t.Errorf("run --help has no %q group of flags", cat)
		}
	}
}

// TestPlanJSONAndModel: plan --json is the plan (jobs/plan.Plan), with a
// model name, and examples/.llamapipeignore keeps LICENSES.md out of it.
func TestPlanJSONAndModel(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plan", "../../examples", "--json", "--max-size", "10MB")
	if code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	var p plan.Plan
	strictJSON(t, stdout, &p)
	if p.Model == "" || p.Provider != "offline" || p.Total != 8 {
		t.Errorf("plan: model %q provider %q total %d (want 8: examples/ without LICENSES.md and the ignore file)", p.Model, p.Provider, p.Total)
	}
	_, stdout, _ = runCLI(t, "plan", "../../examples")
	if !strings.HasPrefix(stdout, "Plan for offline (offline)") {
		t.Errorf("plan text: %q", strings.SplitN(stdout, "\n", 2)[0])
	}
	// 1 kB: every example is larger, so every one is skipped for its size.
	_, stdout, _ = runCLI(t, "plan", "../../examples", "--json", "--max-size", "1kB")
	strictJSON(t, stdout, &p)
	if p.All.Items != 0 {
		t.Errorf("--max-size 1kB left %d items", p.All.Items)
	}
}

// TestJSONCommands follows one batch through run, status, batches, ingest
// and cancel with --json, and checks that with --log-format json stderr
// holds only JSON records.
func TestJSONCommands(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	for _, n := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(src, n), []byte("This lease is made between A and B."), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI(t, "--redis-url", url, "--log-format", "json", "--log-level", "info", "run", src, "--out", out, "--json", "--concurrency", "2")
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("a plain line among the JSON logs: %q", l)
		}
	}
	var st clix.BatchStatus
	strictJSON(t, stdout, &st)
	if st.State != jobs.StateFinished || st.Counts.Done != 2 || !strings.HasSuffix(st.Manifest, "manifest.jsonl") {
		t.Errorf("run --json: %+v", st)
	}
	code, stdout, _ = runCLI(t, "--redis-url", url, "status", st.ID, "--json")
	var st2 clix.BatchStatus
	strictJSON(t, stdout, &st2)
	if code != 0 || st2.ID != st.ID || st2.State != jobs.StateFinished {
		t.Errorf("status --json: %d %+v", code, st2)
	}

	code, stdout, stderr = runCLI(t, "--redis-url", url, "ingest", src, "--out", out, "--force", "--json")
	var started clix.Started
	strictJSON(t, stdout, &started)
	if code != 0 || started.Total != 2 || started.Queued != 2 || started.Kinds["document"] != 2 {
		t.Fatalf("ingest --json: %d %+v %s", code, started, stderr)
	}
	code, stdout, _ = runCLI(t, "--redis-url", url, "cancel", started.BatchID, "--json")
	var cancelled clix.Cancelled
	strictJSON(t, stdout, &cancelled)
	if code != 0 || cancelled.Removed != 2 || cancelled.State != jobs.StateCancelling || cancelled.Counts.Cancelled != 2 {
		t.Errorf("cancel --json: %d %+v", code, cancelled)
	}

	code, stdout, _ = runCLI(t, "--redis-url", url, "batches", "--json")
	var all []clix.BatchStatus
	if err := json.Unmarshal([]byte(stdout), &all); code != 0 || err != nil || len(all) < 2 || all[0].ID != started.BatchID {
		t.Fatalf("batches --json: %d %v %s", code, err, stdout)
	}
	_, stdout, _ = runCLI(t, "--redis-url", url, "batches", "--json", "--state", jobs.StateFinished)
	var fin []clix.BatchStatus
	_ = json.Unmarshal([]byte(stdout), &fin)
	for _, b := range fin {
		if b.State != jobs.StateFinished {
			t.Errorf("batches --state finished listed %s (%s)", b.ID, b.State)
		}
	}
	if len(fin) == 0 || fin[0].ID != st.ID {
		t.Errorf("batches --state finished: %s", stdout)
	}
	_, stdout, _ = runCLI(t, "--redis-url", url, "batches")
	if !bytes.Contains([]byte(stdout), []byte(st.ID)) || !strings.HasPrefix(stdout, "ID") {
		t.Errorf("batches: %s", stdout)
	}
}
