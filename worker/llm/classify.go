package llm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RetryAfter returns the provider's Retry-After carried by err, if any.
// Meant for the worker's asynq RetryDelayFunc.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// IsRateLimited reports whether err is a rate-limit answer (429 or a
// provider's throttling code). Such errors should not count as failures
// (asynq IsFailure).
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.RateLimited
}

// Redact replaces every occurrence of secret in s with "[REDACTED]". Secrets
// shorter than 4 bytes are not searched for (they would match ordinary text);
// no real API key is that short.
func Redact(s, secret string) string {
	secret = strings.TrimSpace(secret)
	if len(secret) < 4 || s == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[REDACTED]")
}

// ParseRetryAfter parses a Retry-After header value: either delay-seconds
// (fractions accepted) or an HTTP date, taken relative to now. A date in the
// past gives zero with ok true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || f != f || f > 1e9 {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// retryAfterHeader reads Retry-After-Ms (used by some OpenAI-compatible
// services) or Retry-After.
func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms >= 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if d, ok := ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return d
	}
	return 0
}

// maxMessage bounds how much of a provider's error text is kept.
const maxMessage = 500

// ProviderMessage pulls the provider's error code and message out of an
// error body. It understands the shapes the supported providers use:
// OpenAI-style {"error":{"message","code","type"}}, {"error":"text"},
// Qianfan's {"code","msg","type"}, DashScope's {"code","message","request_id"}
// and AWS's {"message"} / {"Message"}. For anything else the (trimmed,
// shortened) body text is the message. The result is not yet redacted.
func ProviderMessage(body []byte) (code, msg string) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) == nil && top != nil {
		obj := top
		if raw, ok := top["error"]; ok {
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil && inner != nil {
				obj = inner
			} else if s := jsonString(raw); s != "" {
				return jsonString(top["code"]), shorten(s)
			}
		}
		code = jsonString(obj["code"])
		if code == "" {
			code = jsonString(obj["type"])
		}
		for _, k := range []string{"message", "msg", "Message", "error_msg", "detail"} {
			if s := jsonString(obj[k]); s != "" {
				msg = s
				break
			}
		}
		if rid := jsonString(top["request_id"]); rid != "" && msg != "" {
			msg += " (request_id " + rid + ")"
		}
		if msg != "" || code != "" {
			return code, shorten(msg)
		}
	}
	return "", shorten(strings.TrimSpace(string(body)))
}

// jsonString renders a JSON string or number as text; other values give "".
func jsonString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func shorten(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// rateLimitWords mark a throttling answer even without HTTP 429
// (e.g. DashScope "Throttling.RateQuota", Qianfan "rpm_rate_limit_exceeded").
var rateLimitWords = []string{"rate limit", "rate_limit", "ratelimit", "throttl", "too many requests", "rpm_", "tpm_"}

// fatalCodes mark answers that no retry can fix for any item: billing or
// account problems.
var fatalWords = []string{"insufficient_quota", "arrearage", "invalidapikey", "invalid_api_key", "accessdenied", "billing"}

// sizeWords mark an answer that says the request (image, prompt) is too big.
var sizeWords = []string{"too large", "too big", "too long", "exceeds", "exceeded", "maximum context", "context length", "context_length", "input length", "max length", "maximum length", "too many tokens", "token limit", "payload"}

func containsAny(s string, words []string) bool {
	s = strings.ToLower(s)
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// HTTPError classifies a non-2xx answer from provider:
//
//   - 429, or a throttling code/message → Retryable, RateLimited, with
//     Retry-After (seconds, HTTP date or Retry-After-Ms) when given;
//   - 401/403, or a billing/key code → Fatal;
//   - 413, or a 4xx whose message says the request is too large → TooLarge;
//   - 408, 409, 425 and 5xx → Retryable;
//   - other 4xx → Permanent.
//
// The provider's code and message are kept with secret redacted.
func HTTPError(provider string, status int, header http.Header, body []byte, secret string) *Error {
	code, msg := ProviderMessage(body)
	code, msg = Redact(code, secret), Redact(msg, secret)
	e := &Error{Provider: provider, Status: status, Code: code, Message: msg}
	both := code + " " + msg
	switch {
	case status == http.StatusTooManyRequests && containsAny(code, []string{"insufficient_quota"}):
		e.Kind = Fatal
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = Fatal
	case status == http.StatusTooManyRequests || (status >= 400 && containsAny(both, rateLimitWords)):
		e.Kind = Retryable
		e.RateLimited = true
		e.RetryAfter = retryAfterHeader(header, time.Now())
	case status >= 400 && status < 500 && containsAny(code, fatalWords):
		e.Kind = Fatal
	case status == http.StatusRequestEntityTooLarge:
		e.Kind = TooLarge
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooEarly || status >= 500:
		e.Kind = Retryable
		e.RetryAfter = retryAfterHeader(header, time.Now())
	case status >= 400 && containsAny(both, sizeWords):
		e.Kind = TooLarge
	default:
		e.Kind = Permanent
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// redactedError hides a secret in an underlying error's text while keeping
// it reachable for errors.Is / errors.As.
type redactedError struct {
	err    error
	secret string
}

func (r *redactedError) Error() string { return Redact(r.err.Error(), r.secret) }
func (r *redactedError) Unwrap() error { return r.err }

// RedactError returns err with secret removed from its text (nil stays nil).
func RedactError(err error, secret string) error {
	if err == nil || len(strings.TrimSpace(secret)) < 4 {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

// TransportError classifies a call that got no usable answer: timeouts,
// connection resets, refused connections, truncated or undecodable bodies are
// Retryable; certificate problems and malformed URLs are Fatal (they are
// configuration errors that no retry fixes). An err that already carries an
// *Error is returned as is.
func TransportError(provider string, err error, secret string) *Error {
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	e := &Error{Provider: provider, Kind: Retryable, Err: RedactError(err, secret)}
	var (
		verifyErr *tls.CertificateVerificationError
		authErr   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		urlErr    *url.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e.Code = "no_answer"
	case errors.As(err, &verifyErr), errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &certErr):
		e.Kind = Fatal
	case errors.As(err, &urlErr) && urlErr.Op == "parse",
		strings.Contains(err.Error(), "unsupported protocol scheme"):
		e.Kind = Fatal
	}
	// Everything else (timeouts, resets, refused connections, EOF mid-body)
	// is transient.
	return e
}

// BadBody is the Retryable error for a 2xx answer that could not be read or
// decoded (truncated, not JSON, no choices).
func BadBody(provider string, status int, err error, secret string) *Error {
	return &Error{Provider: provider, Kind: Retryable, Status: status, Code: "bad_body", Err: RedactError(err, secret)}
}
