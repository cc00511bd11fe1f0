package metrics

import (
	"cmp"
	"context"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// Instrument returns c recording every request in m (ModelRequest: latency,
// tokens, cost at the profile's prices, error class). With a nil m it
// returns c itself. Wrap the provider's client below the shared rate limit
// (ratelimit.Wrap), so latency is the provider's and not the wait.
func Instrument(c llm.Client, m *Metrics) llm.Client {
	if m == nil {
		return c
	}
	return &instrumented{next: c, m: m}
}

type instrumented struct {
	next llm.Client
	m    *Metrics
	// tenant is the tenant of the task the client is bound to ("": none).
	tenant string
}

func (c *instrumented) Profile() llm.Profile { return c.next.Profile() }

// ForTask returns the client recording t's calls under its tenant.
func (c *instrumented) ForTask(t *llm.Task) llm.Client {
	return &instrumented{next: llm.For(c.next, t), m: c.m, tenant: t.TenantOf()}
}

func (c *instrumented) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	start := time.Now()
	resp, err := c.next.Complete(ctx, req)
	p := c.next.Profile()
	// The preset names the provider where there is one (groq and together
	// are both "openai"): a fallback chain's providers stay apart.
	c.m.ModelRequestFor(c.tenant, cmp.Or(p.Preset, p.Provider), p.Model, time.Since(start), resp.Usage.InputTokens, resp.Usage.OutputTokens, p.Prices.Cost(resp.Usage), p.Prices.Currency, err)
	return resp, err
}
