package llm

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 0.5 ", 500 * time.Millisecond, true},
		{"0", 0, true},
		{"Wed, 25 Nov 2026 10:01:30 GMT", 90 * time.Second, true},
		{"Wed, 25 Nov 2026 09:59:00 GMT", 0, true}, // past
		{"-3", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHTTPErrorKinds(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After-Ms", "1500")
	tests := []struct {
		status  int
		header  http.Header
		body    string
		kind    ErrorKind
		limited bool
		after   time.Duration
		code    string
		msg     string
	}{
		{429, h, `{"error":{"message":"slow down"}}`, Retryable, true, 1500 * time.Millisecond, "", "slow down"},
		{401, nil, `{"error":"bad key"}`, Fatal, false, 0, "", "bad key"},
		{403, nil, `{"error":{"message":"rate limit tier not available for this key"}}`, Fatal, false, 0, "", "rate limit tier not available for this key"},
		{403, nil, ``, Fatal, false, 0, "", "Forbidden"},
		{413, nil, `too big`, TooLarge, false, 0, "", "too big"},
		{400, nil, `{"code":336003,"msg":"the max length of current question is 8000","type":"invalid_request"}`, TooLarge, false, 0, "336003", "the max length of current question is 8000"},
		{400, nil, `{"code":"InvalidParameter","message":"Image too large","request_id":"q"}`, TooLarge, false, 0, "InvalidParameter", "Image too large (request_id q)"},
		{400, nil, `{"error":{"code":"insufficient_quota","message":"pay"}}`, Fatal, false, 0, "insufficient_quota", "pay"},
		{404, nil, `{"error":{"message":"no such model"}}`, Permanent, false, 0, "", "no such model"},
		{503, nil, `<html>down</html>`, Retryable, false, 0, "", "<html>down</html>"},
		{408, nil, ``, Retryable, false, 0, "", "Request Timeout"},
		{400, nil, `{"error":{"type":"tpm_rate_limit_exceeded","message":"TPM"}}`, Retryable, true, 0, "tpm_rate_limit_exceeded", "TPM"},
	}
	for _, tt := range tests {
		e := HTTPError("p", tt.status, tt.header, []byte(tt.body), "")
		if e.Kind != tt.kind || e.RateLimited != tt.limited || e.RetryAfter != tt.after || e.Code != tt.code || e.Message != tt.msg || e.Status != tt.status {
			t.Errorf("HTTPError(%d, %s) = %+v", tt.status, tt.body, e)
		}
	}
}

func TestHTTPErrorShortensAndRedacts(t *testing.T) {
	key := "sk-secret-value-123"
	body := strings.Repeat("é", 400) + key
	e := HTTPError("p", 500, nil, []byte(`{"message":"bad key `+key+`"}`), key)
	if strings.Contains(e.Error(), key) || !strings.Contains(e.Error(), "[REDACTED]") {
		t.Errorf("not redacted: %q", e.Error())
	}
	e = HTTPError("p", 500, nil, []byte(body), key)
	if len(e.Message) > maxMessage+len("…") || !strings.HasSuffix(e.Message, "…") || strings.ContainsRune(e.Message, '\uFFFD') {
		t.Errorf("message not shortened on a rune boundary: %d bytes", len(e.Message))
	}
}

func TestTransportError(t *testing.T) {
	key := "sk-secret-value-123"
	wrapped := fmt.Errorf("post https://x/?key=%s: %w", key, syscall.ECONNRESET)
	e := TransportError("p", wrapped, key)
	if e.Kind != Retryable || !errors.Is(e, syscall.ECONNRESET) || strings.Contains(e.Error(), key) {
		t.Errorf("reset: %+v %q", e, e.Error())
	}
	if e := TransportError("p", fmt.Errorf("x: %w", context.DeadlineExceeded), ""); e.Kind != Retryable || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("deadline: %+v", e)
	}
	if e := TransportError("p", io.ErrUnexpectedEOF, ""); e.Kind != Retryable {
		t.Errorf("EOF: %+v", e)
	}
	cert := &url.Error{Op: "Post", URL: "https://x", Err: x509.UnknownAuthorityError{}}
	if e := TransportError("p", cert, ""); e.Kind != Fatal {
		t.Errorf("cert: %+v", e)
	}
	if e := TransportError("p", &url.Error{Op: "Post", URL: "ftp://x", Err: errors.New(`unsupported protocol scheme "ftp"`)}, ""); e.Kind != Fatal {
		t.Errorf("scheme: %+v", e)
	}
	orig := &Error{Kind: TooLarge, Provider: "q"}
	if got := TransportError("p", fmt.Errorf("w: %w", orig), ""); got != orig {
		t.Errorf("an existing *Error was not kept: %+v", got)
	}
}

func TestRetryAfterAndRateLimitedThroughWrapping(t *testing.T) {
	err := fmt.Errorf("job 7: %w", &Error{Kind: Retryable, RateLimited: true, RetryAfter: 3 * time.Second})
	if d, ok := RetryAfter(err); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if !IsRateLimited(err) || KindOf(err) != Retryable {
		t.Error("wrapped error lost its classification")
	}
	if _, ok := RetryAfter(errors.New("plain")); ok || IsRateLimited(errors.New("plain")) {
		t.Error("plain error reported as rate-limited")
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("key=abcd1234 and abcd1234", "abcd1234"); got != "key=[REDACTED] and [REDACTED]" {
		t.Errorf("Redact = %q", got)
	}
	if got := Redact("a b c", "b"); got != "a b c" {
		t.Errorf("short secret redacted: %q", got)
	}
}
