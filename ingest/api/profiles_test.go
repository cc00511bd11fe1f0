package api

import (
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// offlineProfile is the workers' profile of most tests: no prices, no batch
// API.
var offlineProfile = llm.Profile{Provider: llm.ProviderOffline, TextOnly: true}

// testProfiles resolves profiles as cmd/llamapipe/serve.go wires them: ""
// is the workers' profile, any other name one of llm.Builtins(), estimated
// by worker/estimate. (Only the tests of this package import worker/.)
func testProfiles(workers llm.Profile) func(string) (Profile, error) {
	return func(name string) (Profile, error) {
		prof := workers
		if name != "" {
			p, err := llm.ResolveProfile(llm.Builtins(), name, "", "", "")
			if err != nil {
				return Profile{}, err
			}
			prof = p
		}
		return Profile{
			Name:        cmpOr(prof.Preset, prof.Provider),
			NoDocuments: llm.CheckRequestAllowed(prof, false),
			BatchAPI:    prof.BatchAPI != "",
			Estimator:   estimate.New(prof, estimate.Options{}),
		}, nil
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
