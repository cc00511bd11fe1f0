package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/storage"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// writeAttempts is how many times one write is tried in-process before its
// error goes back to the worker (which retries the task, without a new
// model call: the answer is kept, see Keeper). writeBackoff is the wait
// before the second attempt; it quadruples after each.
const (
	writeAttempts = 3
	writeBackoff  = 100 * time.Millisecond
)

// Put writes data to key in out. A failure that may heal (a timeout, a
// 5xx, an unknown error, a denied access that may be a propagating
// permission) is tried again, writeAttempts times in all; a name the store
// can never take (storage.ErrNameTooLong, storage.ErrInvalidKey) is not.
// What is left is returned by WriteError: a PermanentError with an
// actionable reason when retrying cannot heal it.
func Put(ctx context.Context, out storage.Store, key string, data []byte, contentType string) error {
	ctx, span := tracing.Start(ctx, tracing.SpanWrite, trace.WithAttributes(attribute.String("llamapipe.key", key), attribute.Int("llamapipe.bytes", len(data))))
	defer span.End()
	return WriteError(key, put(ctx, out, key, data, contentType))
}

// put is Put without WriteError.
func put(ctx context.Context, out storage.Store, key string, data []byte, contentType string) error {
	return retry(ctx, func() error { return out.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType) })
}

// retry calls write until it succeeds, writeAttempts times in all, unless
// its error is a name the store can never take.
func retry(ctx context.Context, write func() error) error {
	var err error
	wait := writeBackoff
	for attempt := 1; ; attempt++ {
		err = write()
		if err == nil || attempt == writeAttempts || errors.Is(err, storage.ErrNameTooLong) || errors.Is(err, storage.ErrInvalidKey) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 4
	}
}

// PutGroup writes an item's result objects to out together
// (storage.PutGroup: on a local folder, one commit makes them all durable),
// trying again and classifying a failure as Put does (the error names the
// group's first key).
func PutGroup(ctx context.Context, out storage.Store, objs []storage.Object) error {
	if len(objs) == 0 {
		return nil
	}
	n := 0
	for _, o := range objs {
		n += len(o.Data)
	}
	ctx, span := tracing.Start(ctx, tracing.SpanWrite, trace.WithAttributes(attribute.String("llamapipe.key", objs[0].Key),
		attribute.Int("llamapipe.objects", len(objs)), attribute.Int("llamapipe.bytes", n)))
	defer span.End()
	return WriteError(objs[0].Key, retry(ctx, func() error { return storage.PutGroup(ctx, out, objs) }))
}

// PutVolatile writes an object the item can do without after a power loss
// (storage.PutVolatile: on a local folder, without a sync), trying again
// and classifying a failure as Put does.
func PutVolatile(ctx context.Context, out storage.Store, key string, data []byte, contentType string) error {
	return WriteError(key, putVolatile(ctx, out, key, data, contentType))
}

func putVolatile(ctx context.Context, out storage.Store, key string, data []byte, contentType string) error {
	return retry(ctx, func() error {
		return storage.PutVolatile(ctx, out, key, bytes.NewReader(data), int64(len(data)), contentType)
	})
}

// WriteError wraps the error of writing result key: a storage error that
// retrying cannot heal (storage.IsPermanent) becomes a PermanentError
// whose reason says what to change ("cannot write result a.json: name too
// long (259 chars; the limit is 255 bytes per path element)"); any other
// is returned wrapped for the worker to retry. nil stays nil.
func WriteError(key string, err error) error {
	if err == nil {
		return nil
	}
	if storage.IsPermanent(err) {
		return Permanent(fmt.Sprintf("cannot write result %s: %s", key, storage.PermanentReason(err)), fmt.Errorf("write %s: %w", key, err))
	}
	return fmt.Errorf("write %s: %w", key, err)
}
