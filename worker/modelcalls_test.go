package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

type countedCall struct {
	batch  string
	d      time.Duration
	failed bool
}

type callLog struct{ calls []countedCall }

func (l *callLog) CountModelCall(_ context.Context, batch string, d time.Duration, failed bool) error {
	l.calls = append(l.calls, countedCall{batch, d, failed})
	return nil
}

// stepModel answers with resp/err after waiting in its process (reported
// as llm.Waits) and then taking took.
type stepModel struct {
	wait, took time.Duration
	resp       llm.Response
	err        error
}

func (m *stepModel) Complete(ctx context.Context, _ llm.Request) (llm.Response, error) {
	llm.AddWait(ctx, m.wait)
	time.Sleep(m.took)
	return m.resp, m.err
}

func (m *stepModel) Profile() llm.Profile { return llm.Profile{Provider: "openai", Model: "m"} }

// TestModelCallsCountedWhereSent: a call sent online is counted in its
// batch's series with its own duration, without the waits before it was
// sent; a failed send is counted as failed; a provider batch job's answer
// and a call a limiter or batch mode held back are not counted.
func TestModelCallsCountedWhereSent(t *testing.T) {
	const took = 3 * time.Millisecond
	for _, c := range []struct {
		name   string
		m      *stepModel
		count  bool
		failed bool
	}{
		{"answered", &stepModel{took: took, resp: llm.Response{Text: "ok"}}, true, false},
		{"answered after a long quota wait", &stepModel{wait: time.Hour, took: took, resp: llm.Response{Text: "ok"}}, true, false},
		{"failed at the provider", &stepModel{took: took, err: llm.HTTPError("openai", 503, nil, nil, "sk")}, true, true},
		{"a provider batch job's answer", &stepModel{resp: llm.Response{Text: "ok", Batch: true}}, false, false},
		{"held by the rate limit", &stepModel{err: &llm.Error{Provider: ratelimit.Provider, Kind: llm.Retryable, RateLimited: true}}, false, false},
		{"waiting for a batch answer", &stepModel{err: errDeferred}, false, false},
	} {
		log := &callLog{}
		tr := &traced{Client: c.m, sends: &sendLog{}, calls: log, batch: "b1"}
		_, err := tr.Complete(context.Background(), llm.Request{})
		if !errors.Is(err, c.m.err) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.m.err)
		}
		if !c.count {
			if len(log.calls) != 0 {
				t.Errorf("%s: counted %+v, want nothing", c.name, log.calls)
			}
			continue
		}
		if len(log.calls) != 1 || log.calls[0].batch != "b1" || log.calls[0].failed != c.failed {
			t.Fatalf("%s: counted %+v, want one call of b1, failed %v", c.name, log.calls, c.failed)
		}
		switch d := log.calls[0].d; {
		case c.m.wait > 0 && d >= c.m.wait:
			t.Errorf("%s: counted %v, which includes the %v wait", c.name, d, c.m.wait)
		case c.m.wait == 0 && d < took:
			t.Errorf("%s: counted %v, less than the call took (%v)", c.name, d, took)
		}
	}
}
