package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// PermanentError is a failure that retrying cannot fix: bad input, an
// unsupported format, a model that refuses the request. Its Reason is what
// the manifest shows. (Declared in worker/stage, where the stages make it.)
type PermanentError = stage.PermanentError

// permanent wraps err as a PermanentError with a reason for people.
func permanent(reason string, err error) error { return stage.Permanent(reason, err) }

// FatalError stops the whole batch: the provider refused the key or the
// model. One message is recorded for the batch and every remaining item
// fails fast with it. (Declared in worker/stage.)
type FatalError = stage.FatalError

// errDuplicateInFlight: an identical image is being captioned by another
// task; retry shortly. It is not a failure (see isFailure).
var errDuplicateInFlight = caption.ErrDuplicateInFlight

// PausedError holds an item back while its tenant has no budget left
// (Err is the *tenants.BudgetError). It is not a failure: the task waits in
// asynq's retry set and looks again after RetryAfter, so the batch resumes
// by itself when the budget is raised or the day or month rolls over.
type PausedError struct {
	Tenant     string
	RetryAfter time.Duration
	Err        error
}

func (e *PausedError) Error() string { return "paused: " + e.Err.Error() }
func (e *PausedError) Unwrap() error { return e.Err }

// classify turns any error from processing an item into one of: a
// *PermanentError, a *FatalError, or a retryable error (returned as is).
func classify(err error) error {
	var pe *PermanentError
	var fe *FatalError
	if errors.As(err, &pe) || errors.As(err, &fe) || errors.Is(err, errCancelled) {
		return err
	}
	switch {
	case errors.Is(err, jobs.ErrBadPayload):
		return permanent("bad task payload: "+err.Error(), err)
	case errors.Is(err, storage.ErrInvalidKey):
		return permanent(err.Error(), err)
	case errors.Is(err, fs.ErrNotExist):
		return permanent("source no longer exists: it was deleted or moved after ingest", err)
	case storage.IsPermanent(err):
		// A store that refuses the name or the credentials: retrying the
		// item cannot heal it (the stages already retried the write).
		return permanent(err.Error(), err)
	}
	switch llm.KindOf(err) {
	case llm.Fatal:
		return &FatalError{Err: err}
	case llm.Permanent, llm.TooLarge:
		return permanent("model refused the request: "+err.Error(), err)
	}
	return err
}

// retryDelay is the asynq RetryDelayFunc: the provider's Retry-After when
// it gave one, a quick retry for tasks recovered from a dead worker, else
// exponential backoff with jitter (2s, 4s, 8s ... capped at 5 minutes).
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if pe := (*PausedError)(nil); errors.As(err, &pe) {
		return pe.RetryAfter
	}
	if d, ok := llm.RetryAfter(err); ok && d > 0 {
		return d
	}
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return time.Second
	}
	if errors.Is(err, errDuplicateInFlight) {
		return 2 * time.Second
	}
	if errors.Is(err, errDeferred) {
		// The poller runs the task again as soon as its answer is in; this
		// is only the fallback.
		return deferredRecheck
	}
	d := time.Duration(1<<min(n+1, 8)) * time.Second
	d = min(d, 5*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// deferredRecheck is how long an item waiting for a batch answer sleeps if
// nobody wakes it.
const deferredRecheck = 30 * time.Minute

// isFailure is the asynq IsFailure func: rate limiting (429), waiting for
// an identical image's caption or for a provider batch job's answer, a
// tenant with no budget left (*PausedError), and a storage outage (S3 unreachable, 5xx,
// throttling) are not failures of the item and do not use up its retries:
// the batch waits for the store instead of failing every item queued during
// the outage.
func isFailure(err error) bool {
	return !llm.IsRateLimited(err) && !errors.Is(err, errDuplicateInFlight) && !storage.IsTransient(err) &&
		!errors.As(err, new(*PausedError)) &&
		!errors.Is(err, errDeferred)
}

// recoverPanics turns a panic in a handler into an error, so the item is
// recorded and retried like any other failure and the process lives on.
func recoverPanics(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error (panic: %v); please report it", r)
			}
		}()
		return h.ProcessTask(ctx, t)
	})
}
