package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/listed"
)

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
func (t *Tracker) EntriesPage(ctx context.Context, batch string, cursor uint64, count int) ([]Entry, uint64, error) {
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
	return out, next, nil
}

// EntryCount returns how many entries a batch has recorded: the items
// hash's fields (HLEN), a listing chunk counted as its entries.
func (t *Tracker) EntryCount(ctx context.Context, batch string) (int, error) {
	var n *redis.IntCmd
	var f, e *redis.StringCmd
	if _, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, f, e = p.HLen(ctx, BatchItemsKey(t.prefix, batch)), p.HGet(ctx, BatchKey(t.prefix, batch), "listed_fields"), p.HGet(ctx, BatchKey(t.prefix, batch), "listed_entries")
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	nf, _ := f.Int()
	ne, _ := e.Int()
	return int(n.Val()) - nf + ne, nil
}

// Entry returns one recorded entry of a batch by its item ID (HGET, then
// the batch's listing chunks, if any: RecordListed); ok is false when the
// item has no entry (yet).
func (t *Tracker) Entry(ctx context.Context, batch, item string) (e Entry, ok bool, err error) {
	b, err := t.rdb.HGet(ctx, BatchItemsKey(t.prefix, batch), item).Bytes()
	if errors.Is(err, redis.Nil) { // in a listing chunk, if the batch has some
		b, err = nil, nil
		if n, _ := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), "listed_fields").Int(); n > 0 {
			b, err = listed.Find(ctx, t.rdb, BatchItemsKey(t.prefix, batch), item)
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
