// Package outage is the record of the model providers that fallback
// chains found down, as Redis keeps it (jobs.ProviderOutageKey, indexed
// by jobs.ProvidersDownKey). ratelimit.Outages writes it with Mark; status,
// the API and the dashboard read it with a Reader, without importing the
// worker.
package outage

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
)

// Down is a provider that is down: fallback chains skip it until Until.
type Down struct {
	// Provider is the preset (else the provider) as results name who
	// answered; Model its model.
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Kind is its protocol (openai, dashscope, bedrock), matched against a
	// batch's provider.
	Kind string `json:"-"`
	// Since is when it went down (the first mark of this outage); Until
	// when calls go to it again.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Reason is what took it down: a run of failures or a long 429, with
	// the last HTTP status and error code (or connection error); never the
	// provider's message, which may quote a tenant's request.
	Reason string `json:"reason"`
}

// maxReason bounds a stored reason (the provider's message may be long).
const maxReason = 300

// Mark records d as quota's outage until d.Until, replacing its run of
// failures; a provider still down from an earlier mark keeps its Since.
// An Until not after now records nothing.
func Mark(ctx context.Context, rdb redis.UniversalClient, quota string, d Down, now time.Time) error {
	dur := d.Until.Sub(now)
	if dur <= 0 {
		return nil
	}
	if r := []rune(d.Reason); len(r) > maxReason {
		d.Reason = string(r[:maxReason]) + "…"
	}
	key := jobs.ProviderOutageKey(quota)
	tx := rdb.TxPipeline()
	tx.HDel(ctx, key, "failures")
	tx.HSetNX(ctx, key, "since", now.UnixMilli())
	tx.HSet(ctx, key, "until", d.Until.UnixMilli(), "provider", d.Provider, "kind", d.Kind, "model", d.Model, "reason", d.Reason)
	tx.PExpire(ctx, key, dur)
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("outage: mark %s down: %w", d.Provider, err)
	}
	idx := jobs.ProvidersDownKey()
	pl := rdb.Pipeline()
	pl.ZAdd(ctx, idx, redis.Z{Score: float64(d.Until.UnixMilli()), Member: quota})
	pl.ZRemRangeByScore(ctx, idx, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	last := pl.ZRangeWithScores(ctx, idx, -1, -1)
	if _, err := pl.Exec(ctx); err != nil {
		return fmt.Errorf("outage: index %s: %w", d.Provider, err)
	}
	if zs := last.Val(); len(zs) == 1 {
		if err := rdb.PExpireAt(ctx, idx, time.UnixMilli(int64(zs[0].Score))).Err(); err != nil {
			return fmt.Errorf("outage: index %s: %w", d.Provider, err)
		}
	}
	return nil
}

// Reader reads which providers are down.
type Reader struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewReader reads the outages in rdb.
func NewReader(rdb redis.UniversalClient) *Reader { return &Reader{rdb: rdb, now: time.Now} }

// All returns every provider down now, the soonest back first.
func (r *Reader) All(ctx context.Context) ([]Down, error) {
	now := r.now()
	quotas, err := r.rdb.ZRangeByScore(ctx, jobs.ProvidersDownKey(), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil || len(quotas) == 0 {
		if err != nil {
			return nil, fmt.Errorf("outage: list providers down: %w", err)
		}
		return nil, nil
	}
	pl := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(quotas))
	for i, q := range quotas {
		cmds[i] = pl.HGetAll(ctx, jobs.ProviderOutageKey(q))
	}
	if _, err := pl.Exec(ctx); err != nil {
		return nil, fmt.Errorf("outage: read providers down: %w", err)
	}
	var out []Down
	for _, c := range cmds {
		m := c.Val()
		until, since := millis(m["until"]), millis(m["since"])
		if !until.After(now) { // recovered, or its record expired first
			continue
		}
		out = append(out, Down{Provider: m["provider"], Model: m["model"], Kind: m["kind"], Since: since, Until: until, Reason: m["reason"]})
	}
	return out, nil
}

// ProvidersDown returns the providers down now that batch b's items may
// call: its own model (b's provider and model) and its fallback presets.
func (r *Reader) ProvidersDown(ctx context.Context, b jobs.Batch) ([]Down, error) {
	all, err := r.All(ctx)
	if err != nil {
		return nil, err
	}
	return ForBatch(b, all), nil
}

// ForBatch keeps those of all that batch b's items may call.
func ForBatch(b jobs.Batch, all []Down) []Down {
	var out []Down
	for _, d := range all {
		if (d.Kind == b.Provider && d.Model == b.Model) || slices.Contains(b.Options.Fallback, d.Provider) {
			out = append(out, d)
		}
	}
	return out
}

func millis(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
