package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// EntriesPage reads one page of a batch's recorded entries: one HSCAN step
// of the items hash from cursor (0: the start), asking Redis for about
// count fields, each one entry or a listing chunk (RecordListed) of up to
// a listing page's entries, expanded. It returns them in the hash's order and the cursor of the
// next page, 0 after the last one. Memory is O(page) whatever the batch's
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
	kv, next, err := t.rdb.HScan(ctx, BatchItemsKey(t.prefix, batch), cursor, "", int64(count)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	out := make([]Entry, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		es, err := decodeListed(batch, kv[i], []byte(kv[i+1]))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, es...)
	}
	return out, next, nil
}

// EntryCount returns how many entries a batch has recorded: the items
// hash's fields (HLEN), each listing chunk counted as its entries.
func (t *Tracker) EntryCount(ctx context.Context, batch string) (int, error) {
	var n *redis.IntCmd
	var listed *redis.SliceCmd
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n = p.HLen(ctx, BatchItemsKey(t.prefix, batch))
		listed = p.HMGet(ctx, BatchKey(t.prefix, batch), "listed_fields", "listed_entries")
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	c := int(n.Val())
	if v := listed.Val(); len(v) == 2 {
		f, _ := v[0].(string)
		e, _ := v[1].(string)
		nf, _ := strconv.Atoi(f)
		ne, _ := strconv.Atoi(e)
		c += ne - nf
	}
	return c, nil
}

// Entry returns one recorded entry of a batch by its item ID (HGET, then
// the batch's listing chunks, if any: RecordListed); ok is false when the
// item has no entry (yet).
func (t *Tracker) Entry(ctx context.Context, batch, item string) (e Entry, ok bool, err error) {
	b, err := t.rdb.HGet(ctx, BatchItemsKey(t.prefix, batch), item).Bytes()
	if errors.Is(err, redis.Nil) {
		return t.listedEntry(ctx, batch, item)
	}
	if err != nil {
		return e, false, fmt.Errorf("batch %s entry %s: %w", batch, item, err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false, fmt.Errorf("batch %s: bad entry %s: %w", batch, item, err)
	}
	return e, true, nil
}
