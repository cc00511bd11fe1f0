package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/storage"
)

// A bounded batch (Spec.MaxQueued > 0) never has more than MaxQueued items
// in the queue. Ingest queues the first ones itself; once the bound is
// reached it writes the rest, as item payloads, in pages in the batch's
// work area (feed.PageKey) and leaves them to TopUp, a feed task the
// workers run when items end (and every few seconds while pages wait).
// The listing's cursor is kept with the feed, page by page, so a listing
// that stopped continues where it stopped (Options.Resume).

// pageSize is Options.PageSize's default, and the most TopUp queues in one
// step.
const pageSize = 1000

// pollEvery is how often a batch's feed is topped up besides when items end.
const pollEvery = 2 * time.Second

// listBounded lists, classifies and hands over a bounded batch's items a
// page at a time and returns how many items the batch has (its objects
// and their emails' attachments).
func (in *Ingester) listBounded(ctx context.Context, pr *prepared, b jobs.Batch, res *Result) (int, error) {
	o := pr.o
	st, _, err := in.Feeds.Get(ctx, b.ID)
	if err != nil {
		return 0, err
	}
	out, err := in.Open(ctx, o.Out)
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", o.Out, err)
	}
	if st.Items == 0 { // a feed from before items were counted apart
		st.Items = st.Listed
	}
	if st.Done {
		return st.Items, in.askFeed(ctx, b, feed.PollA, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cands := make(chan candidate, max(o.PageSize, listAhead))
	listed := make(chan error, 1)
	go func() {
		defer close(cands)
		listed <- in.listFrom(ctx, pr, st, cands)
	}()
	// total counts the listing's objects (the cursor, and a chunk's
	// identity); items counts the batch's items: the objects and the
	// attachments of the emails among them.
	total, nitems := st.Listed, st.Items
	if _, err := pr.markers(); err != nil {
		return nitems, err
	}
	for {
		chunk := take(cands, o.PageSize)
		if len(chunk) == 0 {
			break
		}
		items := in.classifyAll(ctx, pr, chunk)
		if err := ctx.Err(); err != nil {
			return nitems, err // classified while stopping: not to be trusted
		}
		// Numbered in listing order, an email's attachments after it; the
		// count is kept with the cursor, so a resume numbers alike.
		for i := range items {
			items[i].Seq = int64(nitems + i + 1)
		}
		// The chunk's skipped items are recorded in one Redis write, as
		// the chunk that starts at listing offset total: a resumed listing
		// records the same chunk again and counts nothing twice.
		var skipped []jobs.Entry
		for _, it := range items {
			if it.Skip != "" {
				skipped = append(skipped, skipEntry(it))
			}
		}
		n, err := in.Tracker.RecordListed(ctx, b.ID, total, skipped)
		if err != nil {
			return nitems, err
		}
		var byIngest atomic.Int64
		byIngest.Add(int64(n))
		var page bytes.Buffer
		var now []Item
		paged := 0
		for _, it := range items {
			res.Kinds[string(it.Kind)]++
			if it.Skip != "" {
				res.Skipped++
				continue
			}
			if st.Pages == 0 && st.Handed+len(now) < o.MaxQueued {
				now = append(now, it)
				continue
			}
			line, err := itemtask.Encode(b, in.payload(ctx, b, o, it))
			if err != nil {
				it.Skip = "cannot be queued: " + err.Error()
				recorded, err := in.record(ctx, b, it)
				if err != nil {
					return nitems, err
				}
				if recorded {
					byIngest.Add(1)
				}
				res.Skipped++
				continue
			}
			page.Write(line)
			page.WriteByte('\n')
			paged++
		}
		direct, err := in.enqueueAll(ctx, b, o, now)
		res.Enqueued += direct
		res.Skipped += len(now) - direct
		if err != nil {
			return nitems, err
		}
		st.Handed += direct
		if err := in.Feeds.Add(ctx, b.ID, "handed", direct); err != nil {
			return nitems, err
		}
		if err := in.Feeds.Add(ctx, b.ID, "by_ingest", int(byIngest.Load())); err != nil {
			return nitems, err
		}
		if page.Len() > 0 {
			if err := out.Put(ctx, feed.PageKey(b.ID, st.Pages), &page, int64(page.Len()), "application/x-ndjson"); err != nil {
				return nitems, fmt.Errorf("write feed page %d of %s: %w", st.Pages, b.ID, err)
			}
			st.Pages++
			res.Enqueued += paged
		}
		total += len(chunk)
		nitems += len(items)
		last := chunk[len(chunk)-1]
		if err := in.Feeds.Set(ctx, b.ID, "source", last.src.index, "key", last.info.Key, "listed", total, "items", nitems, "pages", st.Pages); err != nil {
			return nitems, err
		}
		in.spill(ctx, b.ID, out, o.PageSize, total)
		if st.Pages > 0 {
			if err := in.askFeed(ctx, b, feed.PollA, 0); err != nil {
				return nitems, err
			}
		}
	}
	if err := <-listed; err != nil {
		return nitems, err
	}
	if err := ctx.Err(); err != nil {
		return nitems, err
	}
	if err := in.Feeds.Set(ctx, b.ID, "done", true); err != nil {
		return nitems, err
	}
	return nitems, in.askFeed(ctx, b, feed.PollA, 0)
}

// spiller is the part of a *jobs.Tracker that moves a bounded batch's
// finished entries out of Redis (jobs/spill).
type spiller interface {
	Spill(ctx context.Context, batch string, out storage.Store, size int, listed func(context.Context) (int, error)) (int, error)
}

// spill moves the listing chunks ingest has passed (listed is its cursor)
// and other finished entries out of Redis, size at a time (a listing page),
// once the batch holds two pages:
// an unchanged re-run queues nothing, so no worker would. Best effort: what
// stays is moved later.
func (in *Ingester) spill(ctx context.Context, batch string, out storage.Store, size, listed int) {
	if sp, ok := in.Tracker.(spiller); ok {
		if _, err := sp.Spill(ctx, batch, out, size, func(context.Context) (int, error) { return listed, nil }); err != nil {
			in.logger().WarnContext(ctx, "finished entries not moved to the work area", "batch_id", batch, "error", err.Error())
		}
	}
}

// enqueueAll enqueues items with o.Concurrency goroutines and returns how
// many were queued (an item that cannot be queued is recorded skipped).
func (in *Ingester) enqueueAll(ctx context.Context, b jobs.Batch, o Options, items []Item) (int, error) {
	var queued atomic.Int64
	idx := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(o.Concurrency, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				ok, err := in.enqueue(ctx, b, o, items[i])
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				if ok {
					queued.Add(1)
				}
			}
		}()
	}
	for i := range items {
		idx <- i
	}
	close(idx)
	wg.Wait()
	select {
	case err := <-errs:
		return int(queued.Load()), err
	default:
		return int(queued.Load()), nil
	}
}

// take receives up to n candidates; it returns fewer only once cands is
// closed.
func take(cands <-chan candidate, n int) []candidate {
	var out []candidate
	for c := range cands {
		out = append(out, c)
		if len(out) == n {
			break
		}
	}
	return out
}

// classifyAll classifies a chunk with o.Concurrency goroutines, keeping
// its order; an email is followed by the items of its attachments
// (classifyExpanded, as scan does for an unbounded batch).
func (in *Ingester) classifyAll(ctx context.Context, pr *prepared, chunk []candidate) []Item {
	per := make([][]Item, len(chunk))
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(pr.o.Concurrency, len(chunk)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				per[i] = in.classifyExpanded(ctx, pr, chunk[i])
			}
		}()
	}
	for i := range chunk {
		idx <- i
	}
	close(idx)
	wg.Wait()
	items := make([]Item, 0, len(chunk))
	for _, p := range per {
		items = append(items, p...)
	}
	return items
}

// listFrom lists the batch's objects after the feed's cursor, in order.
func (in *Ingester) listFrom(ctx context.Context, pr *prepared, st feed.State, cands chan<- candidate) error {
	seen := map[string]bool{}
	if pr.o.explicitItems() {
		// Explicit items come in a fixed order: skip those listed before.
		inner := make(chan candidate)
		errc := make(chan error, 1)
		go func() {
			defer close(inner)
			errc <- in.explicit(ctx, pr, seen, inner)
		}()
		n := 0
		for c := range inner {
			if n++; n <= st.Listed {
				continue
			}
			select {
			case cands <- c:
			case <-ctx.Done():
			}
		}
		return <-errc
	}
	for _, src := range pr.sources {
		opts := storage.ListOptions{Recursive: true}
		if st.Listed > 0 {
			if src.index < st.Source {
				continue
			}
			if src.index == st.Source {
				opts.StartAfter = st.Key
			}
		}
		for info, err := range src.store.List(ctx, "", opts) {
			if err != nil {
				return fmt.Errorf("list %s: %w", src.url, err)
			}
			if info.IsPrefix || !src.selected(info.Key, pr.o.Include, pr.o.Exclude) {
				continue
			}
			id := jobs.ItemID(src.url, info.Key)
			if seen[id] {
				continue
			}
			seen[id] = true
			select {
			case cands <- candidate{src: src, info: info}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (in *Ingester) askFeed(ctx context.Context, b jobs.Batch, kind string, delay time.Duration) error {
	return feed.Ask(ctx, in.Queue, b.ID, b.Queue, kind, delay)
}

// TopUp runs a feed task (feed.TypeFeed): it queues a bounded batch's
// items from its pages until MaxQueued are queued, or, once the batch is
// cancelled, records them as cancelled. One TopUp feeds a batch at a time;
// while items wait in pages, it asks for the next poll.
func (in *Ingester) TopUp(ctx context.Context, t *asynq.Task) error {
	p, err := feed.Decode(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b, err := in.Tracker.Get(ctx, p.Batch)
	if errors.Is(err, jobs.ErrNoBatch) {
		return fmt.Errorf("feed: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	unlock, err := in.Feeds.Lock(ctx, b.ID)
	if err != nil || unlock == nil {
		return err // another TopUp is feeding: it asks for the next poll
	}
	defer unlock()
	st, ok, err := in.Feeds.Get(ctx, b.ID)
	if err != nil || !ok || st.Fed() {
		return err
	}
	if err := in.feedPages(ctx, b, &st); err != nil {
		return err
	}
	if st.Fed() {
		return nil
	}
	next := feed.PollA
	if id, _ := asynq.GetTaskID(ctx); id == feed.TaskID(b.ID, feed.PollA) {
		next = feed.PollB
	}
	return in.askFeed(ctx, b, next, pollEvery)
}

// feedPages queues (or, in a cancelled batch, records as cancelled) the
// items of the pages from st's cursor while there is room.
func (in *Ingester) feedPages(ctx context.Context, b jobs.Batch, st *feed.State) error {
	out, err := in.Open(ctx, b.Out)
	if err != nil {
		return fmt.Errorf("output %s: %w", b.Out, err)
	}
	minRoom := max(1, min(b.MaxQueued/4, pageSize))
	for st.Next < st.Pages {
		c, err := in.Tracker.Counts(ctx, b.ID)
		if err != nil {
			return err
		}
		room := b.MaxQueued - st.Queued(c)
		if !c.CancelRequested && room < minRoom {
			return nil
		}
		lines, err := readPage(ctx, out, feed.PageKey(b.ID, st.Next))
		if err != nil {
			return err
		}
		end := len(lines)
		if !c.CancelRequested {
			end = min(end, st.Offset+room)
		}
		complete := false
		for _, line := range lines[st.Offset:end] {
			ip, err := itemtask.Decode(line, func(string) (jobs.Batch, error) { return b, nil })
			if err != nil {
				return fmt.Errorf("feed page %d of %s: %w", st.Next, b.ID, err)
			}
			if c.CancelRequested {
				e := jobs.Entry{Item: ip.Item, Seq: ip.Seq, Source: ip.Source.URL(), ETag: ip.Source.ETag, Size: ip.Source.Size, Kind: ip.Kind,
					Type: ip.Type, Task: ip.Task, ResultBase: ip.ResultBase, Key: ip.Source.Key, Status: jobs.StatusCancelled,
					Error: "cancelled: the batch was cancelled before this item ran"}
				_, done, err := in.Tracker.Record(ctx, b.ID, e)
				if err != nil {
					return err
				}
				complete = complete || done
				continue
			}
			task, err := itemtask.NewTask(b, ip, itemtask.Options{Queue: b.Queue, MaxRetry: b.MaxRetry, Retention: -1})
			if err != nil {
				return err
			}
			if _, err := in.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return fmt.Errorf("enqueue %s: %w", ip.Source.URL(), err)
			}
		}
		handed := end - st.Offset
		st.Offset = end
		if end == len(lines) {
			st.Next, st.Offset = st.Next+1, 0
		}
		st.Handed += handed
		if err := in.Feeds.Advance(ctx, b.ID, st.Next, st.Offset, handed); err != nil {
			return err
		}
		if complete {
			if err := in.enqueueFinalize(ctx, b.ID, b.Queue); err != nil {
				return err
			}
		}
	}
	return nil
}

// readPage reads a feed page's lines.
func readPage(ctx context.Context, st storage.Store, key string) ([][]byte, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("read feed page %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read feed page %s: %w", key, err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	return lines, sc.Err()
}
