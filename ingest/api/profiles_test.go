package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage"
)

// The API knows no model: its tests resolve profiles with fakes. The real
// wiring (worker/llm profiles, worker/estimate) is cmd/llamapipe's
// apiProfiles, tested there; the estimate itself in worker/estimate.

// fakeProfile is a model profile of the tests.
type fakeProfile struct {
	noDocuments bool
	batchAPI    bool
	// price is the cost of a million tokens (0: no prices); batchDiscount
	// the batch API's share of it (0: none).
	price, batchDiscount float64
}

var (
	// offlineProfile is the workers' profile of most tests: no prices, no
	// batch API.
	offlineProfile = fakeProfile{}
	groqProfile    = fakeProfile{batchAPI: true, price: 0.5, batchDiscount: 0.5}
	builtins       = map[string]fakeProfile{
		"offline":   offlineProfile,
		"groq":      groqProfile,
		"dashscope": {noDocuments: true, price: 1},
	}
)

// testProfiles resolves "" to the workers' profile and other names from
// builtins, as cmd/llamapipe/serve.go resolves them from worker/llm's.
func testProfiles(workers fakeProfile) func(string) (Profile, error) {
	return func(name string) (Profile, error) {
		prof, pname := workers, ""
		for n, p := range builtins {
			if p == workers {
				pname = n
			}
		}
		if name != "" {
			p, ok := builtins[name]
			if !ok {
				return Profile{}, fmt.Errorf("unknown preset %q", name)
			}
			prof, pname = p, name
		}
		var noDocs error
		if prof.noDocuments {
			noDocs = errors.New("the model takes images only")
		}
		return Profile{Name: pname, NoDocuments: noDocs, BatchAPI: prof.batchAPI, Estimator: fakeEstimator{name: pname, p: prof}}, nil
	}
}

// fakeEstimator counts a document's text at 4 bytes a token (a PDF as one
// page), an image as 1,000 tokens, one request per item.
type fakeEstimator struct {
	name string
	p    fakeProfile
}

var _ ingest.ItemEstimator = fakeEstimator{}

func (f fakeEstimator) Estimate(ctx context.Context, st storage.Store, ref jobs.Ref, head []byte, e plan.Item) plan.Item {
	if e.Kind == jobs.KindDocument {
		e.TextTokens = int(e.Size / 4)
		if e.Type == "pdf" {
			e.Pages = 1
		}
	}
	return f.Extrapolate(e)
}

func (f fakeEstimator) Extrapolate(e plan.Item) plan.Item {
	e.Requests, e.OutputTokens = 1, 100
	switch e.Kind {
	case jobs.KindDocument:
		e.InputTokens = e.TextTokens + 500
	case jobs.KindImage:
		e.Images, e.ImageTokens, e.InputTokens = 1, 1000, 1500
	}
	return e
}

func (f fakeEstimator) Price(p *plan.Plan) {
	p.Profile, p.Provider, p.Priced = f.name, f.name, f.p.price > 0
	if p.Priced {
		p.Currency = "USD"
	}
	price := func(t *plan.Totals) {
		t.Cost = float64(t.InputTokens+t.OutputTokens) / 1e6 * f.p.price
		if f.p.batchDiscount > 0 {
			b := t.Cost * f.p.batchDiscount
			t.BatchCost = &b
		}
	}
	for k, t := range p.Kinds {
		price(&t)
		p.Kinds[k] = t
	}
	price(&p.All)
}
