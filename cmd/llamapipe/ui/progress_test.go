package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
)

// fakeTracker is a batch record that is already as the test wants it.
type fakeTracker struct {
	b    jobs.Batch
	c    jobs.Counts
	hook *jobs.WebhookState
}

func (f fakeTracker) Get(context.Context, string) (jobs.Batch, error)     { return f.b, nil }
func (f fakeTracker) Counts(context.Context, string) (jobs.Counts, error) { return f.c, nil }
func (f fakeTracker) WebhookState(context.Context, string) (jobs.WebhookState, bool, error) {
	if f.hook == nil {
		return jobs.WebhookState{}, false, nil
	}
	return *f.hook, true, nil
}

func TestFollowAFinishedBatch(t *testing.T) {
	b := jobs.Batch{ID: "b1", Spec: jobs.Spec{Out: "/out/"}}
	done := jobs.Counts{Total: 3, Done: 3, Sealed: true, Finalized: true, InputTokens: 10, OutputTokens: 5, Cost: 0.5, Costs: map[string]float64{"RUB": 0.5}, Currency: "RUB"}
	var stdout, stderr bytes.Buffer
	if err := Follow(context.Background(), fakeTracker{b: b, c: done}, "b1", &stdout, &stderr, FollowOptions{Started: true, Log: slog.New(slog.NewJSONHandler(&stderr, nil))}); err != nil {
		t.Fatalf("a batch without failures: %v", err)
	}
	if want := "manifest: /out/" + b.ManifestPath(); !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "batch b1 (finished): 3 items: 3 done, 0 failed, 0 skipped; 10 input / 5 output tokens; cost 0.5000 RUB") {
		t.Errorf("stderr %q lacks the summary", stderr.String())
	}

	failed := done
	failed.Done, failed.Failed = 1, 2
	err := Follow(context.Background(), fakeTracker{b: b, c: failed}, "b1", &stdout, &stderr, FollowOptions{Started: true, Log: slog.New(slog.NewJSONHandler(&stderr, nil))})
	if err == nil || !strings.Contains(err.Error(), "2 of 3 items failed") || errors.Is(err, ErrReported) {
		t.Errorf("failed items: %v", err)
	}

	stderr.Reset()
	fatal := done
	fatal.Fatal = "the provider refused the API key"
	err = Follow(context.Background(), fakeTracker{b: b, c: fatal}, "b1", &stdout, &stderr, FollowOptions{Started: true, Log: slog.New(slog.NewJSONHandler(&stderr, nil))})
	if !errors.Is(err, ErrReported) || strings.Count(stderr.String(), fatal.Fatal) != 1 {
		t.Errorf("a fatal stop: %v, stderr %q; want ErrReported and the reason said once", err, stderr.String())
	}
}

func TestPrintStatusShowsTheWebhook(t *testing.T) {
	b := jobs.Batch{ID: "b2", Spec: jobs.Spec{Webhook: "https://hooks.example/x"}}
	c := jobs.Counts{Total: 1, Done: 1, Sealed: true, Finalized: true}
	var w bytes.Buffer
	if err := PrintStatus(context.Background(), &w, fakeTracker{b: b, c: c}, b, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "webhook: https://hooks.example/x (not called yet)") {
		t.Errorf("output %q", w.String())
	}
	w.Reset()
	st := jobs.WebhookState{Status: jobs.WebhookDelivered, Attempts: 2, LastStatus: 204}
	if err := PrintStatus(context.Background(), &w, fakeTracker{b: b, c: c, hook: &st}, b, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "after 2 attempt(s), last answer HTTP 204") {
		t.Errorf("output %q", w.String())
	}
}

// vanishing is a batch record that Redis loses while it is followed.
type vanishing struct{ fakeTracker }

func (v vanishing) Counts(ctx context.Context, id string) (jobs.Counts, error) {
	return jobs.Counts{}, fmt.Errorf("batch %s: %w", id, jobs.ErrNoBatch)
}

func TestFollowReportsALostBatch(t *testing.T) {
	b := jobs.Batch{ID: "b1", Spec: jobs.Spec{Out: "/out/"}}
	var stdout, stderr bytes.Buffer
	err := Follow(context.Background(), vanishing{fakeTracker{b: b}}, "b1", &stdout, &stderr, FollowOptions{Started: true, Log: slog.New(slog.NewJSONHandler(&stderr, nil))})
	g := jobs.Gone(err)
	if g == nil || g.State != jobs.StateLost || g.ID != "b1" {
		t.Fatalf("a record that vanished while followed: %v, want the batch reported lost", err)
	}
}

func TestProgressLineCarriesTheCurrency(t *testing.T) {
	c := jobs.Counts{Total: 4, Sealed: true, Done: 2, Cost: 1.25, Costs: map[string]float64{"USD": 1.25}, Currency: "USD"}
	if got, want := progressLine(c), "2/4 ended (2 done, 0 failed, 0 skipped; cost 1.2500 USD)"; got != want {
		t.Errorf("progress line %q, want %q", got, want)
	}
}

// TestFollowOffATerminalLogsOnly: when stderr is not a terminal, every
// line Follow writes there is a log record (here JSON), never a plain line.
func TestFollowOffATerminalLogsOnly(t *testing.T) {
	b := jobs.Batch{ID: "b1", Spec: jobs.Spec{Out: "/out/"}}
	c := jobs.Counts{Total: 3, Done: 1, Failed: 2, Sealed: true, Finalized: true, Fatal: "the provider refused the API key"}
	var stdout, stderr bytes.Buffer
	_ = Follow(context.Background(), fakeTracker{b: b, c: c}, "b1", &stdout, &stderr, FollowOptions{Log: slog.New(slog.NewJSONHandler(&stderr, nil))})
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("stderr %q: want the fatal reason and the summary as records", stderr.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["batch_id"] != "b1" {
			t.Errorf("not a JSON record of batch b1: %q (%v)", l, err)
		}
	}
	if !strings.Contains(stderr.String(), "batch b1 (stopped)") {
		t.Errorf("stderr %q lacks the summary with the state", stderr.String())
	}
}

// TestStatesAreTheAPIs: the summary line names the state as the API and
// the dashboard do (jobs.Counts.State), for every state.
func TestStatesAreTheAPIs(t *testing.T) {
	b := jobs.Batch{ID: "b1"}
	for _, c := range []jobs.Counts{
		{}, {Sealed: true, Total: 2}, {Sealed: true, Total: 2, CancelRequested: true},
		{Sealed: true, Total: 1, Done: 1}, {Sealed: true, Total: 1, Done: 1, Finalized: true},
		{Sealed: true, Total: 1, Cancelled: 1, Finalized: true, CancelRequested: true}, {Fatal: "x"},
	} {
		var w bytes.Buffer
		printCounts(&w, b, c, false)
		st := c.State()
		if !slices.Contains(jobs.States, st) || !strings.HasPrefix(w.String(), "batch b1 ("+st+")") {
			t.Errorf("%+v: %q, want state %q of jobs.States", c, w.String(), st)
		}
	}
}

// A batch waiting out a failing provider batch API says so in status and
// in run's progress, once per new message.
func TestWarningShownInStatusAndProgress(t *testing.T) {
	c := jobs.Counts{Total: 2, Sealed: true, Finalized: true, Done: 2, Warning: "provider batch API failing (collect, 2 times since 04:00:00): 502 Bad Gateway"}
	var w bytes.Buffer
	printCounts(&w, jobs.Batch{ID: "b"}, c, false)
	if !strings.Contains(w.String(), "warning: provider batch API failing") {
		t.Errorf("status %q lacks the warning", w.String())
	}
	var stdout, stderr bytes.Buffer
	_ = Follow(context.Background(), fakeTracker{b: jobs.Batch{ID: "b"}, c: c}, "b", &stdout, &stderr, FollowOptions{Started: true, Log: slog.New(slog.NewTextHandler(&stderr, nil))})
	if n := strings.Count(stderr.String(), "502 Bad Gateway"); n != 2 { // as it is seen, and in the summary
		t.Errorf("progress said the warning %d times: %q", n, stderr.String())
	}
}

// downTracker is a batch that runs for its first polls (with a provider
// down), then is finalized.
type downTracker struct {
	fakeTracker
	polls atomic.Int32
	down  []outage.Down
}

func (d *downTracker) Counts(context.Context, string) (jobs.Counts, error) {
	if d.polls.Add(1) < 3 {
		return jobs.Counts{Total: 2, Sealed: true, Done: 1}, nil
	}
	return d.c, nil
}

func (d *downTracker) ProvidersDown(context.Context, jobs.Batch) ([]outage.Down, error) {
	return d.down, nil
}

// While a provider of the batch is down, run's progress says so once.
func TestProgressSaysAProviderIsDown(t *testing.T) {
	until := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	tr := &downTracker{fakeTracker: fakeTracker{b: jobs.Batch{ID: "b"}, c: jobs.Counts{Total: 2, Sealed: true, Finalized: true, Done: 2}},
		down: []outage.Down{{Provider: "groq", Model: "scout", Until: until, Reason: "3 connection errors or 5xx answers in a row, the last: HTTP 503"}}}
	var stdout, stderr bytes.Buffer
	if err := Follow(context.Background(), tr, "b", &stdout, &stderr, FollowOptions{Log: slog.New(slog.NewTextHandler(&stderr, nil))}); err != nil {
		t.Fatal(err)
	}
	want := "provider down: groq (scout) until 2026-12-07 05:00:00 UTC: 3 connection errors or 5xx answers in a row, the last: HTTP 503"
	if n := strings.Count(stderr.String(), want); n != 1 {
		t.Errorf("progress said %q %d times: %q", want, n, stderr.String())
	}
}
