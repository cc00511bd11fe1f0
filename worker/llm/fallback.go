package llm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Outages is where a fallback chain keeps which providers are down, shared
// by every worker (ratelimit.Outages keeps it in Redis) so that they switch
// together and switch back together after the cool-down.
type Outages interface {
	// DownUntil is when provider name is usable again (zero: it is up).
	DownUntil(ctx context.Context, name string) (time.Time, error)
	// Failed counts one outage-like failure of name and returns how many
	// came in a row (Succeeded resets the run).
	Failed(ctx context.Context, name string) (int, error)
	// Succeeded ends name's run of failures.
	Succeeded(ctx context.Context, name string) error
	// MarkDown records name as down until o.Until, with what o says of it.
	MarkDown(ctx context.Context, name string, o Outage) error
}

// Outage is what a fallback chain records of a provider it takes down.
type Outage struct {
	// Provider is the link's Name; Kind and Model its client's profile's
	// provider and model.
	Provider, Kind, Model string
	// Until is when calls go to it again.
	Until time.Time
	// Reason says what took it down, with the last status and error code
	// (outageCause).
	Reason string
}

// FallbackPolicy says when a provider counts as down and for how long.
type FallbackPolicy struct {
	// Failures is how many connection errors or 5xx answers in a row take
	// a provider down. Default 3.
	Failures int
	// MaxWait is the longest 429 wait (Retry-After) worth waiting for: a
	// longer one takes the provider down for that wait. Default 2 minutes.
	MaxWait time.Duration
	// CoolDown is how long a provider stays down after its failures.
	// Default 5 minutes.
	CoolDown time.Duration
}

// WithDefaults is p with its zero fields set to their defaults.
func (p FallbackPolicy) WithDefaults() FallbackPolicy {
	p.Failures = cmp.Or(p.Failures, 3)
	p.MaxWait = cmp.Or(p.MaxWait, 2*time.Minute)
	p.CoolDown = cmp.Or(p.CoolDown, 5*time.Minute)
	return p
}

// Link is one provider of a fallback chain.
type Link struct {
	// Name is what results record as the provider: the preset, else the
	// provider (and the key of its outage state).
	Name string
	// Quota names its outage state in Outages (with ratelimit.Outages:
	// jobs.ModelQuotaName of the preset and model). Default Name.
	Quota  string
	Client Client
}

func (l Link) quota() string { return cmp.Or(l.Quota, l.Name) }

// NewFallback returns a Client that sends each call to the first provider
// of chain that is not down, and moves on to the next when that one turns
// out to be down: a connection error or 5xx that completes a run of
// policy.Failures, or a 429 whose wait is over policy.MaxWait. Each
// Response names the provider that answered (Response.Provider).
//
// A call that got an answer is never sent again: a 2xx the client could
// not read, a 4xx, and a bad key (Fatal, which still stops the batch) are
// returned as they are. The last provider of the chain is never skipped.
// Its Profile is the primary's.
func NewFallback(chain []Link, outages Outages, policy FallbackPolicy) Client {
	if outages == nil {
		outages = &MemoryOutages{}
	}
	return &fallback{chain: chain, out: outages, pol: policy.WithDefaults(), now: time.Now}
}

type fallback struct {
	chain []Link
	out   Outages
	pol   FallbackPolicy
	now   func() time.Time
}

func (f *fallback) Profile() Profile { return f.chain[0].Client.Profile() }

// ForTask binds every client of the chain to t.
func (f *fallback) ForTask(t *Task) Client {
	c := *f
	c.chain = make([]Link, len(f.chain))
	for i, l := range f.chain {
		c.chain[i] = Link{Name: l.Name, Quota: l.Quota, Client: For(l.Client, t)}
	}
	return &c
}

func (f *fallback) Complete(ctx context.Context, req Request) (Response, error) {
	var lastErr error
	for i, l := range f.chain {
		last := i == len(f.chain)-1
		if !last {
			// Outage state errors only lose the hint: the provider is tried.
			if until, err := f.out.DownUntil(ctx, l.quota()); err == nil && f.now().Before(until) {
				switched(ctx, l.Name, f.chain[i+1].Name, nil)
				continue
			}
		}
		resp, err := l.Client.Complete(ctx, req)
		if err == nil {
			_ = f.out.Succeeded(ctx, l.quota())
			resp.Provider = cmp.Or(resp.Provider, l.Name)
			if i > 0 && resp.Prices == nil {
				p := l.Client.Profile().Prices
				resp.Prices = &p
			}
			return resp, nil
		}
		if i > 0 {
			err = fmt.Errorf("fallback %s: %w", l.Name, err)
		}
		lastErr = err
		down, d, reason := f.isDown(ctx, l.quota(), err)
		if !down || last {
			return Response{}, err
		}
		p := l.Client.Profile()
		_ = f.out.MarkDown(ctx, l.quota(), Outage{Provider: l.Name, Kind: p.Provider, Model: p.Model, Until: f.now().Add(d), Reason: reason})
		switched(ctx, l.Name, f.chain[i+1].Name, err)
	}
	return Response{}, lastErr
}

// isDown reports whether err (from provider name) takes name down, for
// how long, and why.
func (f *fallback) isDown(ctx context.Context, name string, err error) (bool, time.Duration, string) {
	var e *Error
	if ctx.Err() != nil || !errors.As(err, &e) || e.Kind != Retryable || e.NotSent {
		return false, 0, "" // a bad request, a bad key, or ours (a gate's deferral): not an outage
	}
	if e.RateLimited || e.Status == 429 {
		if e.RetryAfter > f.pol.MaxWait {
			return true, e.RetryAfter, fmt.Sprintf("a 429 asking to wait %s, over the %s worth waiting (%s)", e.RetryAfter, f.pol.MaxWait, outageCause(e))
		}
		return false, 0, ""
	}
	if e.Status != 0 && e.Status < 500 {
		return false, 0, "" // 408 and the like, or an answer we could not read
	}
	if e.Status == 0 && e.Err == nil {
		return false, 0, "" // no connection error behind it
	}
	n, ferr := f.out.Failed(ctx, name)
	if ferr != nil || n < f.pol.Failures {
		return false, 0, ""
	}
	return true, f.pol.CoolDown, fmt.Sprintf("%d connection errors or 5xx answers in a row, the last: %s", n, outageCause(e))
}

// outageCause is what an outage's reason says of e: the HTTP status and
// the provider's error code, or the connection error. Not the provider's
// message: it may quote a request, and every tenant sees the reason.
func outageCause(e *Error) string {
	switch {
	case e.Status != 0 && e.Code != "":
		return fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
	case e.Status != 0:
		return fmt.Sprintf("HTTP %d", e.Status)
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Kind.String() + " error"
}

// MemoryOutages is Outages for one process (tests, a single `run`).
type MemoryOutages struct {
	mu    sync.Mutex
	runs  map[string]int
	until map[string]time.Time
}

func (m *MemoryOutages) DownUntil(_ context.Context, name string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.until[name], nil
}

func (m *MemoryOutages) Failed(_ context.Context, name string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = map[string]int{}
	}
	m.runs[name]++
	return m.runs[name], nil
}

func (m *MemoryOutages) Succeeded(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.runs, name)
	return nil
}

func (m *MemoryOutages) MarkDown(_ context.Context, name string, o Outage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = map[string]time.Time{}
	}
	m.until[name] = o.Until
	delete(m.runs, name)
	return nil
}

// switched records a move down the chain as an event of the call's span
// (the worker's model.call span; nothing without one): both providers and
// why — the status code of the answer that took `from` down, or "down" when
// it was known to be down already. Never a message.
func switched(ctx context.Context, from, to string, err error) {
	reason := "down"
	var e *Error
	switch {
	case errors.As(err, &e) && e.Status != 0:
		reason = "http_" + strconv.Itoa(e.Status)
	case err != nil:
		reason = "connection"
	}
	trace.SpanFromContext(ctx).AddEvent("model.fallback", trace.WithAttributes(attribute.String("llamapipe.from", from),
		attribute.String("llamapipe.to", to), attribute.String("llamapipe.reason", reason)))
}
