package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/listed"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/storage"
)

// pageBit marks an EntriesPage cursor in a batch's spilled pages
// (jobs/spill), the page's number in the bits below it.
const pageBit = 1 << 63

// SetPages gives t the opener of output locations it reads a bounded
// batch's spilled entries from (jobs/spill). A tracker without one
// reading a batch with spilled pages returns an error.
func (t *Tracker) SetPages(open func(ctx context.Context, location string) (storage.Store, error)) {
	t.open = open
}

// Spill moves pages of a bounded batch's finished entries from its items
// hash to out while the hash holds 2×size entries or more (spill.Run);
// listed gives its feed's listed cursor.
func (t *Tracker) Spill(ctx context.Context, batch string, out storage.Store, size int, listed func(context.Context) (int, error)) (int, error) {
	k := spill.Keys{Batch: BatchKey(t.prefix, batch), Items: BatchItemsKey(t.prefix, batch), Lock: BatchSpillLockKey(t.prefix, batch)}
	return spill.Run(ctx, t.rdb, k, out, batch, size, listed, SpillLockTTL)
}

// spilledPage reads page i of a batch's spilled entries and returns the
// cursor of the next page (0: none). The page count is read now, so a
// page written while a reader went through the hash is read too.
func (t *Tracker) spilledPage(ctx context.Context, batch string, i int) ([]Entry, uint64, error) {
	n, err := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), spill.PagesField).Int()
	if errors.Is(err, redis.Nil) || (err == nil && i >= n) {
		return nil, 0, nil
	}
	if err == nil && t.open == nil {
		err = errors.New("its entries are partly in its work area (spilled) and this tracker cannot read them (Tracker.SetPages)")
	}
	var b Batch
	if err == nil {
		b, err = t.Get(ctx, batch)
	}
	var out storage.Store
	if err == nil {
		out, err = t.open(ctx, b.Out)
	}
	var lines [][]byte
	if err == nil {
		lines, err = spill.ReadPage(ctx, out, batch, i)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	es := make([]Entry, len(lines))
	for j, line := range lines {
		if err := json.Unmarshal(line, &es[j]); err != nil {
			return nil, 0, fmt.Errorf("batch %s: bad spilled entry in page %d: %w", batch, i, err)
		}
	}
	if i+1 < n {
		return es, pageBit | uint64(i+1), nil
	}
	return es, 0, nil
}

// EntriesPage reads one page of a batch's recorded entries: one HSCAN step
// of the items hash from cursor (0: the start), asking Redis for about
// count entries (a listing chunk, RecordListed, is one field of many:
// fewer fields are asked for). It returns them in the hash's order and
// the cursor of the next page, 0 after the last one. Memory is O(page) whatever the batch's
// size.
//
// HSCAN's guarantees hold: an entry recorded for the whole iteration is
// returned at least once; one recorded during it may or may not be; while
// the hash grows an entry may come twice (callers that must not see one
// twice dedupe by Entry.Item). A small hash comes whole in one page.
//
// A bounded batch's spilled entries (jobs/spill) come after the hash, one
// page of them a call (cursors with pageBit set); an entry spilled during
// the hash's scan is in a page read after it, and may come twice.
func (t *Tracker) EntriesPage(ctx context.Context, batch string, cursor uint64, count int) ([]Entry, uint64, error) {
	if cursor&pageBit != 0 {
		return t.spilledPage(ctx, batch, int(cursor&^pageBit))
	}
	if count <= 0 {
		count = 100
	}
	count = listed.ScanCount(ctx, t.rdb, BatchKey(t.prefix, batch), BatchItemsKey(t.prefix, batch), count)
	kv, next, err := t.rdb.HScan(ctx, BatchItemsKey(t.prefix, batch), cursor, "", int64(count)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	out := make([]Entry, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		es, err := decodeField(batch, kv[i], []byte(kv[i+1]))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, es...)
	}
	if next == 0 {
		if n, _ := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), spill.PagesField).Int(); n > 0 {
			next = pageBit
		}
	}
	return out, next, nil
}

// EntryCount returns how many entries a batch has recorded: the items
// hash's fields (HLEN), a listing chunk counted as its entries, and those
// spilled (jobs/spill).
func (t *Tracker) EntryCount(ctx context.Context, batch string) (int, error) {
	var n *redis.IntCmd
	var f, e, s *redis.StringCmd
	if _, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, f, e = p.HLen(ctx, BatchItemsKey(t.prefix, batch)), p.HGet(ctx, BatchKey(t.prefix, batch), "listed_fields"), p.HGet(ctx, BatchKey(t.prefix, batch), "listed_entries")
		s = p.HGet(ctx, BatchKey(t.prefix, batch), spill.EntriesField)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	nf, _ := f.Int()
	ne, _ := e.Int()
	ns, _ := s.Int()
	return int(n.Val()) - nf + ne + ns, nil
}

// Entry returns one recorded entry of a batch by its item ID (HGET, then
// the batch's listing chunks, if any: RecordListed, then its spilled pages,
// if any, read one by one: O(batch) for a spilled entry); ok is false when
// the item has no entry (yet).
func (t *Tracker) Entry(ctx context.Context, batch, item string) (e Entry, ok bool, err error) {
	b, err := t.rdb.HGet(ctx, BatchItemsKey(t.prefix, batch), item).Bytes()
	if errors.Is(err, redis.Nil) { // in a listing chunk, if the batch has some
		b, err = nil, nil
		if n, _ := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), "listed_fields").Int(); n > 0 {
			b, err = listed.Find(ctx, t.rdb, BatchItemsKey(t.prefix, batch), item)
		}
		if b == nil && err == nil {
			return t.spilledEntry(ctx, batch, item)
		}
		if b == nil {
			return e, false, err
		}
	}
	if err != nil {
		return e, false, fmt.Errorf("batch %s entry %s: %w", batch, item, err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false, fmt.Errorf("batch %s: bad entry %s: %w", batch, item, err)
	}
	return e, true, nil
}

// spilledEntry finds an item's entry in a batch's spilled pages.
func (t *Tracker) spilledEntry(ctx context.Context, batch, item string) (Entry, bool, error) {
	for cursor := uint64(pageBit); cursor != 0; {
		es, next, err := t.spilledPage(ctx, batch, int(cursor&^pageBit))
		if err != nil {
			return Entry{}, false, err
		}
		for _, e := range es {
			if e.Item == item {
				return e, true, nil
			}
		}
		cursor = next
	}
	return Entry{}, false, nil
}
