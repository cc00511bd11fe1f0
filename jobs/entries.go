package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// EntriesPage reads one page of a batch's recorded entries: one HSCAN step
// of the items hash from cursor (0: the start), asking Redis for about
// count entries. It returns them in the hash's order and the cursor of the
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
		var e Entry
		if err := json.Unmarshal([]byte(kv[i+1]), &e); err != nil {
			return nil, 0, fmt.Errorf("batch %s: bad entry %s: %w", batch, kv[i], err)
		}
		out = append(out, e)
	}
	return out, next, nil
}

// EntryCount returns how many entries a batch has recorded (HLEN).
func (t *Tracker) EntryCount(ctx context.Context, batch string) (int, error) {
	n, err := t.rdb.HLen(ctx, BatchItemsKey(t.prefix, batch)).Result()
	if err != nil {
		return 0, fmt.Errorf("batch %s entries: %w", batch, err)
	}
	return int(n), nil
}

// Entry returns one recorded entry of a batch by its item ID (HGET); ok is
// false when the item has no entry (yet).
func (t *Tracker) Entry(ctx context.Context, batch, item string) (e Entry, ok bool, err error) {
	b, err := t.rdb.HGet(ctx, BatchItemsKey(t.prefix, batch), item).Bytes()
	if errors.Is(err, redis.Nil) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("batch %s entry %s: %w", batch, item, err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false, fmt.Errorf("batch %s: bad entry %s: %w", batch, item, err)
	}
	return e, true, nil
}
