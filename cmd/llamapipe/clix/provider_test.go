package clix

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
)

// The fallback thresholds reach the chain's policy from the profile
// (fallback_after, fallback_max_wait, fallback_cool_down), each
// overridden by its flag or LLAMAPIPE_ variable; neither gives the
// defaults.
func TestFallbackPolicyFromFlagsAndProfile(t *testing.T) {
	profiles := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(profiles, []byte("profiles:\n  groq:\n    fallback_after: 4\n    fallback_max_wait: 30s\n    fallback_cool_down: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want llm.FallbackPolicy
	}{
		"defaults":     {[]string{"--preset", "groq"}, nil, llm.FallbackPolicy{Failures: 3, MaxWait: 2 * time.Minute, CoolDown: 5 * time.Minute}},
		"flags":        {[]string{"--preset", "groq", "--fallback-after", "7", "--fallback-max-wait", "45s", "--fallback-cool-down", "1h"}, nil, llm.FallbackPolicy{Failures: 7, MaxWait: 45 * time.Second, CoolDown: time.Hour}},
		"profile":      {[]string{"--preset", "groq", "--profiles", profiles}, nil, llm.FallbackPolicy{Failures: 4, MaxWait: 30 * time.Second, CoolDown: 10 * time.Minute}},
		"flag wins":    {[]string{"--preset", "groq", "--profiles", profiles, "--fallback-after", "2"}, nil, llm.FallbackPolicy{Failures: 2, MaxWait: 30 * time.Second, CoolDown: 10 * time.Minute}},
		"env wins too": {[]string{"--preset", "groq", "--profiles", profiles}, map[string]string{"LLAMAPIPE_FALLBACK_MAX_WAIT": "5s"}, llm.FallbackPolicy{Failures: 4, MaxWait: 5 * time.Second, CoolDown: 10 * time.Minute}},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var got llm.FallbackPolicy
			cmd := &cli.Command{Name: "x", Flags: ProviderFlags(), Action: func(_ context.Context, cmd *cli.Command) error {
				cfg, err := ProviderConfig(cmd)
				if err != nil {
					return err
				}
				p, err := providers.Profile(cfg)
				got = p.FallbackPolicy().WithDefaults()
				return err
			}}
			if err := cmd.Run(context.Background(), append([]string{"x"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("policy %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := providers.Profile(providers.Config{Preset: "groq", FallbackAfter: -1}); err == nil {
		t.Error("a negative --fallback-after was accepted")
	}
}

// fakeStatus is a StatusReader and DownReader of one batch.
type fakeStatus struct {
	b    jobs.Batch
	c    jobs.Counts
	down []outage.Down
}

func (f fakeStatus) Get(context.Context, string) (jobs.Batch, error)     { return f.b, nil }
func (f fakeStatus) Counts(context.Context, string) (jobs.Counts, error) { return f.c, nil }
func (f fakeStatus) WebhookState(context.Context, string) (jobs.WebhookState, bool, error) {
	return jobs.WebhookState{Status: jobs.WebhookPending, Delivery: "d1"}, true, nil
}
func (f fakeStatus) ProvidersDown(_ context.Context, b jobs.Batch) ([]outage.Down, error) {
	return outage.ForBatch(b, f.down), nil
}

// While a running batch's provider is down, status --json names it
// (providers_down: provider, model, since, until, reason) and the text
// says so; providers the batch does not use, and a batch that ended, show
// none.
func TestStatusShowsProvidersDown(t *testing.T) {
	b := sampleBatch()
	b.Options.Fallback = []string{"together"}
	since := created.Add(10 * time.Minute)
	down := []outage.Down{
		{Provider: "llama-api", Kind: "openai", Model: "llama-4-scout", Since: since, Until: since.Add(5 * time.Minute),
			Reason: "3 connection errors or 5xx answers in a row, the last: HTTP 503"},
		{Provider: "dashscope", Kind: "dashscope", Model: "llama-4-scout", Since: since, Until: since.Add(time.Hour), Reason: "not this batch's"},
	}
	running := jobs.Counts{Total: 4, Done: 1, Sealed: true}
	st, err := ReadBatchStatus(context.Background(), fakeStatus{b, running, down}, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status_down", st)
	var text bytes.Buffer
	PrintProvidersDown(&text, st.ProvidersDown)
	if want := "provider down: llama-api (llama-4-scout) since 2026-12-07 04:10:00, until 2026-12-07 04:15:00 UTC: 3 connection errors"; !strings.HasPrefix(text.String(), want) || strings.Count(text.String(), "\n") != 1 {
		t.Errorf("text %q, want one line starting %q", text.String(), want)
	}
	finished := jobs.Counts{Total: 4, Done: 4, Sealed: true, Finalized: true, Finished: since}
	if st, _ := ReadBatchStatus(context.Background(), fakeStatus{b, finished, down}, b.ID); st.ProvidersDown != nil {
		t.Errorf("a finished batch shows %+v", st.ProvidersDown)
	}
}
