package ingest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// A Feed adds objects one at a time to batches that stay open: the rolling
// batches of a watched inbox. It is made once from Options (sources opened,
// prompts and the fingerprints of current results read once), then asked to
// classify and add each object that arrives. A Feed does not decide which
// objects are new; its caller does (ingest/watch).
type Feed struct {
	in *Ingester
	pr *prepared
}

// NewFeed prepares a feed. Items and Resume are not used.
func (in *Ingester) NewFeed(ctx context.Context, o Options) (*Feed, error) {
	o.Items, o.ItemsFrom, o.Resume = nil, nil, false
	pr, err := in.prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	if _, err := pr.markers(); err != nil {
		return nil, err
	}
	return &Feed{in: in, pr: pr}, nil
}

// Sources returns the feed's source locations, in order (as stored in
// batches and results).
func (f *Feed) Sources() []string {
	out := make([]string, len(f.pr.sources))
	for i, s := range f.pr.sources {
		out[i] = s.url
	}
	return out
}

// Out returns the output location.
func (f *Feed) Out() string { return f.pr.out.String() }

// Options returns the feed's options with their defaults filled in.
func (f *Feed) Options() Options { return f.pr.o }

// List lists one source recursively, yielding only the objects a batch with
// these options would take (include/exclude globs, the output folder left
// out).
func (f *Feed) List(ctx context.Context, source int) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		src := f.pr.sources[source]
		for info, err := range src.store.List(ctx, "", storage.ListOptions{Recursive: true}) {
			if err != nil {
				yield(storage.ObjectInfo{}, fmt.Errorf("list %s: %w", src.url, err))
				return
			}
			if info.IsPrefix || !f.Selected(source, info.Key) {
				continue
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// Selected reports whether a key of a source is one a batch would take.
func (f *Feed) Selected(source int, key string) bool {
	return f.pr.sources[source].selected(key, f.pr.o.Include, f.pr.o.Exclude)
}

// Stat looks an object up (for an event that did not carry its size).
func (f *Feed) Stat(ctx context.Context, source int, key string) (storage.ObjectInfo, error) {
	return f.pr.sources[source].store.Stat(ctx, key)
}

// Classify reads an object's head and decides its type and task, or why it
// is skipped (Item.Unchanged: its results are current).
func (f *Feed) Classify(ctx context.Context, source int, info storage.ObjectInfo) Item {
	return f.in.classify(ctx, f.pr, candidate{src: f.pr.sources[source], info: info})
}

// Open creates the batch id if it does not exist yet and returns it
// (unsealed). watch names the watched inbox it belongs to.
func (f *Feed) Open(ctx context.Context, id, watch string, created time.Time) (jobs.Batch, error) {
	o := f.pr.o
	b := jobs.Batch{ID: id, Created: created.UTC(), Spec: o.Spec, Watch: watch}
	b.Out = f.pr.out.String()
	err := f.in.Tracker.Create(ctx, b)
	if errors.Is(err, jobs.ErrBatchExists) {
		return f.in.Tracker.Get(ctx, id)
	}
	if err != nil {
		return jobs.Batch{}, err
	}
	f.in.logger().InfoContext(ctx, "batch created", "batch_id", id, "watch", watch, "out", b.Out)
	return b, nil
}

// Add enqueues an item's task in batch b, or records it there as skipped.
// It is idempotent: the task ID and the manifest entry are per item, so
// adding the same item twice queues and counts it once. It reports whether
// a task was enqueued.
func (f *Feed) Add(ctx context.Context, b jobs.Batch, it Item) (bool, error) {
	return f.in.enqueue(ctx, b, f.pr.o, it)
}

// Queued is how many of added items of batch id (those the caller gave
// Add, enqueued or skipped) wait in the queue or run: added less those
// ended.
func (f *Feed) Queued(ctx context.Context, id string, added int) (int, error) {
	c, err := f.in.Tracker.Counts(ctx, id)
	if err != nil {
		return 0, err
	}
	return added - c.Ended(), nil
}

// Seal closes batch id with its total; when every item has already ended,
// the finalize task is enqueued.
func (f *Feed) Seal(ctx context.Context, id string, total int) error {
	complete, err := f.in.Tracker.Seal(ctx, id, total)
	if err != nil {
		return err
	}
	if complete {
		return f.in.enqueueFinalize(ctx, id, f.pr.o.Queue)
	}
	return nil
}

func (in *Ingester) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.New(slog.DiscardHandler)
}
