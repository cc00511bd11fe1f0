package llm

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind says what a caller should do about a failed call.
type ErrorKind int

const (
	// Retryable: 429, 408, 5xx, timeouts, resets, truncated or garbage bodies.
	Retryable ErrorKind = iota + 1
	// Permanent: the request itself is wrong for this item (other 4xx).
	Permanent
	// TooLarge: 413 or "too large": shrink the image or chunk once and retry.
	TooLarge
	// Fatal: 401/403: bad key or no access; the whole batch must stop.
	Fatal
)

func (k ErrorKind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	case TooLarge:
		return "too large"
	case Fatal:
		return "fatal"
	}
	return "unknown"
}

// Error is a provider failure, classified. Its message never contains the API
// key (providers redact it before building one).
type Error struct {
	Kind ErrorKind
	// Provider is the provider name, e.g. "openai".
	Provider string
	// Status is the HTTP status, zero when there was no answer.
	Status int
	// Code and Message are the provider's own error code and text.
	Code    string
	Message string
	// RetryAfter is the provider's Retry-After, zero when absent.
	RetryAfter time.Duration
	// RateLimited is true for 429: not counted as a failure.
	RateLimited bool
	// NotSent is true when the call never reached the provider: one of
	// our gates or limiters deferred it or could not reach Redis. It says
	// nothing about the provider's health (a fallback chain does not count
	// it as an outage).
	NotSent bool
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	s := e.Provider + ": "
	if e.Status != 0 {
		s += fmt.Sprintf("HTTP %d: ", e.Status)
	}
	if e.Code != "" {
		s += e.Code + ": "
	}
	if e.Message != "" {
		s += e.Message
	} else if e.Err != nil {
		s += e.Err.Error()
	} else {
		s += e.Kind.String() + " error"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the ErrorKind of err, or 0 when err carries no *Error.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
