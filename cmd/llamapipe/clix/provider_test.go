package clix

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

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
