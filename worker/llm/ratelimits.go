package llm

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimits is what an OpenAI-compatible provider's answer says of its
// rate limits (x-ratelimit-remaining-requests, -tokens, x-ratelimit-reset-
// requests, -tokens, retry-after). Negative counts are "not said".
type RateLimits struct {
	RemainingRequests, RemainingTokens int
	// ResetRequests and ResetTokens are how long until the quotas are
	// full again; RetryAfter the provider's Retry-After (zero: none).
	ResetRequests, ResetTokens, RetryAfter time.Duration
}

// ParseRateLimits reads h's rate-limit headers; ok is false when there
// are none.
func ParseRateLimits(h http.Header, now time.Time) (RateLimits, bool) {
	l := RateLimits{RemainingRequests: -1, RemainingTokens: -1}
	ok := false
	count := func(name string) int {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Get(name))); err == nil && n >= 0 {
			ok = true
			return n
		}
		return -1
	}
	dur := func(name string) time.Duration {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return 0
		}
		if d, err := time.ParseDuration(v); err == nil && d > 0 { // "6m0s", "1s", "20ms"
			return d
		}
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 { // seconds
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	l.RemainingRequests, l.RemainingTokens = count("x-ratelimit-remaining-requests"), count("x-ratelimit-remaining-tokens")
	l.ResetRequests, l.ResetTokens = dur("x-ratelimit-reset-requests"), dur("x-ratelimit-reset-tokens")
	if d, found := ParseRetryAfter(h.Get("retry-after"), now); found {
		l.RetryAfter, ok = d, true
	}
	return l, ok
}

// Hold is how long calls should wait before the next one, given that it
// needs about tokens tokens: until the quota that ran out resets (zero
// when neither is out).
func (l RateLimits) Hold(tokens int) time.Duration {
	d := l.RetryAfter
	if l.RemainingRequests == 0 {
		d = max(d, l.ResetRequests, time.Second)
	}
	if l.RemainingTokens >= 0 && l.RemainingTokens < tokens {
		d = max(d, l.ResetTokens, time.Second)
	}
	return d
}
