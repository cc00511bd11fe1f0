package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

func TestFailureClassesAndDelays(t *testing.T) {
	rate := fmt.Errorf("caption x: %w", &llm.Error{Kind: llm.Retryable, RateLimited: true, RetryAfter: 7 * time.Second})
	outage := fmt.Errorf("get s3://b/k: %w", storage.Transient(errors.New("connection refused")))
	for _, c := range []struct {
		name    string
		err     error
		failure bool
	}{
		{"rate limited", rate, false},
		{"identical image in flight", fmt.Errorf("x: %w", errDuplicateInFlight), false},
		{"storage outage", outage, false},
		{"server error", &llm.Error{Kind: llm.Retryable, Status: 500}, true},
		{"missing source", fmt.Errorf("stat: %w", fs.ErrNotExist), true},
	} {
		if got := isFailure(c.err); got != c.failure {
			t.Errorf("%s: isFailure = %v, want %v", c.name, got, c.failure)
		}
	}
	if d := retryDelay(3, rate, nil); d != 7*time.Second {
		t.Errorf("Retry-After not honoured: %s", d)
	}
	if d := retryDelay(0, asynq.ErrLeaseExpired, nil); d != time.Second {
		t.Errorf("lease-expired retry after %s, want 1s", d)
	}
	for n := range 12 {
		if d := retryDelay(n, errors.New("boom"), nil); d <= 0 || d > 5*time.Minute {
			t.Errorf("backoff %d: %s", n, d)
		}
	}
	var pe *PermanentError
	if err := classify(fmt.Errorf("x: %w", fs.ErrNotExist)); !errors.As(err, &pe) || pe.Reason == "" {
		t.Errorf("missing source not permanent: %v", err)
	}
	var fe *FatalError
	if err := classify(&llm.Error{Kind: llm.Fatal, Status: 401}); !errors.As(err, &fe) {
		t.Errorf("401 not fatal: %v", err)
	}
}
