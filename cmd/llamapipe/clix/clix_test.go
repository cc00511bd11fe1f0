package clix

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares v's --json rendering with testdata/name.golden.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("%s: the --json shape changed (run with -update if on purpose):\n got: %s\nwant: %s", name, b.String(), want)
	}
}

var created = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

func sampleBatch() jobs.Batch {
	return jobs.Batch{ID: "20261207-040000-abcdef", Created: created, Spec: jobs.Spec{
		Sources: []string{"s3://in/contracts"}, Out: "s3://out/results/", Task: jobs.TaskAuto, Queue: jobs.QueueDefault,
		Provider: "openai", Model: "llama-4-scout", Tenant: "acme", Webhook: "https://hooks.example.com/done"}}
}

func TestJSONShapes(t *testing.T) {
	b := sampleBatch()
	c := jobs.Counts{Total: 4, Done: 2, Failed: 1, Skipped: 1, Sealed: true, Finalized: true, InputTokens: 1200, OutputTokens: 300,
		Cost: 0.0042, Finished: created.Add(90 * time.Second)}
	hook := jobs.WebhookState{Status: jobs.WebhookDelivered, Delivery: "d1", Attempts: 1, LastStatus: 200}
	st := NewBatchStatus(b, c, &hook)
	if st.State != jobs.StateFinished || st.Manifest != "s3://out/results/"+b.ManifestPath() {
		t.Errorf("status: %+v", st)
	}
	golden(t, "status", st)
	c2 := jobs.Counts{Total: 4, Done: 1, Cancelled: 3, Sealed: true, CancelRequested: true}
	golden(t, "cancel", Cancelled{BatchStatus: NewBatchStatus(b, c2, nil), Removed: 3})
	golden(t, "ingest", Started{BatchID: b.ID, Total: 4, Queued: 3, Skipped: 1, Kinds: map[string]int{"document": 3, "image": 1}})
	golden(t, "retry", Started{BatchID: "20261207-050000-fedcba", Total: 1, Queued: 1, Kinds: map[string]int{"document": 1}, RetryOf: b.ID})
	golden(t, "plan", plan.Plan{Profile: "llama-api", Provider: "openai", Model: "llama-4-scout", Currency: "USD", Priced: true, Total: 2,
		Kinds: map[jobs.Kind]plan.Totals{jobs.KindDocument: {Items: 2, Pages: 3, Requests: 2, InputTokens: 1650, OutputTokens: 800, Cost: 0.001}},
		All:   plan.Totals{Items: 2, Pages: 3, Requests: 2, InputTokens: 1650, OutputTokens: 800, Cost: 0.001}})
	golden(t, "version", Version{Module: "v1.2.0", Commit: "0123456789abcdef", Time: "2026-12-07T04:00:00Z", Go: "go1.26.8"})
}

// fakeLister has three batches, newest first.
type fakeLister map[string]jobs.Counts

func (f fakeLister) List(context.Context, int) ([]string, error) { return []string{"c", "b", "a"}, nil }
func (f fakeLister) ListTenant(_ context.Context, tenant string, _ int) ([]string, error) {
	if tenant == "acme" {
		return []string{"c", "a"}, nil
	}
	return nil, nil
}
func (f fakeLister) Get(_ context.Context, id string) (jobs.Batch, error) {
	if id == "b" {
		return jobs.Batch{}, jobs.ErrNoBatch // expired while listed
	}
	return jobs.Batch{ID: id, Created: created, Spec: jobs.Spec{Out: "/out", Tenant: "acme"}}, nil
}
func (f fakeLister) Counts(_ context.Context, id string) (jobs.Counts, error) { return f[id], nil }

func TestListBatchesFilters(t *testing.T) {
	l := fakeLister{"a": {Sealed: true, Total: 1, Done: 1, Finalized: true}, "c": {Sealed: true, Total: 2}}
	ids := func(f BatchFilter) string {
		bs, err := ListBatches(context.Background(), l, f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, b := range bs {
			s = append(s, b.ID+":"+b.State)
		}
		return strings.Join(s, ",")
	}
	for f, want := range map[BatchFilter]string{
		{}:                           "c:running,a:finished",
		{State: jobs.StateFinished}:  "a:finished",
		{Tenant: "acme", Limit: 1}:   "c:running",
		{Tenant: "other"}:            "",
		{State: jobs.StateRunning}:   "c:running",
		{State: jobs.StateCancelled}: "",
	} {
		if got := ids(f); got != want {
			t.Errorf("%+v: %q, want %q", f, got, want)
		}
	}
	if err := (BatchFilter{State: "ingesting"}).Validate(); err == nil {
		t.Error("a state outside jobs.States was accepted")
	}
	var b bytes.Buffer
	bs, _ := ListBatches(context.Background(), l, BatchFilter{})
	if err := PrintBatches(&b, bs); err != nil || !strings.Contains(b.String(), "c   running") {
		t.Errorf("table %q", b.String())
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"10MB": 10_000_000, "10MiB": 10 << 20, "1.5 GiB": 3 << 29, "4096": 4096, "512 MiB": 512 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ten", "10XB", "-1MB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if n, _ := ParseSize(FormatSize(512 << 20)); n != 512<<20 {
		t.Errorf("FormatSize does not read back: %q", FormatSize(512<<20))
	}
}

func TestCategoryGroupsTheHelp(t *testing.T) {
	fs := Category(CatBatch, []cli.Flag{&cli.StringFlag{Name: "a"}, &cli.BoolFlag{Name: "b", Category: CatOutput}})
	if fs[0].(*cli.StringFlag).Category != CatBatch || fs[1].(*cli.BoolFlag).Category != CatOutput {
		t.Errorf("categories: %q %q", fs[0].(*cli.StringFlag).Category, fs[1].(*cli.BoolFlag).Category)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	v := versionOf(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}})
	if got := v.String(); got != "v1.2.0 (commit 0123456789ab+modified, go1.26.8)" {
		t.Errorf("version %q", got)
	}
	if got := versionOf(&debug.BuildInfo{GoVersion: "go1.26.8"}).String(); got != "(devel) (go1.26.8)" {
		t.Errorf("a build without VCS info: %q", got)
	}
}

func TestExitCodesHelpListsEveryCode(t *testing.T) {
	h := ExitCodesHelp()
	for _, c := range []string{"  0  ", "  1  ", "  2  ", "  3  ", "130  "} {
		if !strings.Contains(h, c) {
			t.Errorf("help lacks code %q: %s", c, h)
		}
	}
}

// TestSizeFlag parses --max-size through urfave/cli as the commands do.
func TestSizeFlag(t *testing.T) {
	for args, want := range map[string]int64{"": 512 << 20, "10MB": 10_000_000, "2KiB": 2048} {
		var got int64
		cmd := &cli.Command{Name: "x", Flags: []cli.Flag{&cli.GenericFlag{Name: "max-size", Value: NewSize(512 << 20)}},
			Action: func(_ context.Context, cmd *cli.Command) error { got = SizeOf(cmd, "max-size"); return nil }}
		argv := []string{"x"}
		if args != "" {
			argv = append(argv, "--max-size", args)
		}
		if err := cmd.Run(context.Background(), argv); err != nil || got != want {
			t.Errorf("--max-size %q: %d, %v; want %d", args, got, err, want)
		}
	}
}
