// Package spill keeps a bounded batch's Redis flat whatever its size: the
// entries of items that finished leave the batch's items hash
// (jobs.BatchItemsKey) a page at a time, for a JSONL page in the batch's
// work area in its output store (PageKey: one manifest entry a line).
//
// An entry is spillable when it has a Seq (jobs.Entry.Seq: its item is
// known recorded by its bit in jobs.BatchRecordedKey once its field is
// gone), and a listing chunk (jobs/listed) when its offset is below the
// feed's listed cursor (ingest has passed it: it is never recorded again).
// A page is written, durably, before any field leaves: Page is Collect,
// Write, then Commit, one script that deletes the fields still holding
// what the page holds and counts the page, only while the batch's
// spilled_pages is the page's number. A crash between Write and Commit
// leaves the fields in the hash; the next spill rewrites the same page.
//
// Readers (jobs.Tracker's EntriesPage, EachEntry, Entries, EntryCount,
// Entry) read the hash, then pages 0..spilled_pages-1 (ReadPage).
//
// It knows nothing of jobs (jobs uses it); the caller passes the keys.
package spill

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/lease"
	"github.com/llamapipe/llamapipe/jobs/listed"
	"github.com/llamapipe/llamapipe/storage"
)

// Meta fields of the batch's record (jobs.BatchKey) spilling keeps: how
// many pages are written and counted, and how many entries they hold.
const (
	PagesField   = "spilled_pages"
	EntriesField = "spilled_entries"
)

// DefaultPageSize is how many fields a page takes (worker.Config.SpillPage).
const DefaultPageSize = 1000

// PageKey is where page n of a batch's spilled entries is kept, relative to
// its output location.
func PageKey(batch string, n int) string {
	return fmt.Sprintf(".llamapipe/work/%s/entries/page-%08d.jsonl", batch, n)
}

// Keys are the batch's Redis keys a spill touches (one hash slot).
type Keys struct {
	Batch string // jobs.BatchKey: spilled_pages, spilled_entries, listed_*
	Items string // jobs.BatchItemsKey
	Lock  string // jobs.BatchSpillLockKey, held by the spiller
}

// Field is one field of the items hash a page takes: an entry, or a
// listing chunk of Entries entries.
type Field struct {
	Name, Value string
	Entries     int
}

// Collect reads the batch's spilled_pages n and spillable fields of its
// items hash holding up to about size entries (a listing chunk's count
// as many); listedBelow is the feed's listed cursor (0:
// no listing chunk is spillable).
func Collect(ctx context.Context, rdb redis.UniversalClient, k Keys, size, listedBelow int) (n int, fs []Field, err error) {
	n, err = rdb.HGet(ctx, k.Batch, PagesField).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, nil, fmt.Errorf("spill: %w", err)
	}
	var cursor uint64
	seen, entries := map[string]bool{}, 0
	for {
		kv, next, err := rdb.HScan(ctx, k.Items, cursor, "", int64(size)).Result()
		if err != nil {
			return n, nil, fmt.Errorf("spill: %w", err)
		}
		for i := 0; i+1 < len(kv) && entries < size; i += 2 {
			if e := spillable(kv[i], kv[i+1], listedBelow); e > 0 && !seen[kv[i]] { // HSCAN may repeat a field
				seen[kv[i]] = true
				fs = append(fs, Field{Name: kv[i], Value: kv[i+1], Entries: e})
				entries += e
			}
		}
		if cursor = next; cursor == 0 || entries >= size {
			return n, fs, nil
		}
	}
}

// spillable returns how many entries a field holds when it may spill, else 0.
func spillable(name, value string, listedBelow int) int {
	if listed.Is(name) {
		off, err := strconv.Atoi(strings.TrimPrefix(name, listed.Prefix))
		if err != nil || off >= listedBelow {
			return 0
		}
		return len(listed.Lines([]byte(value)))
	}
	var e struct {
		Seq int64 `json:"seq"`
	}
	if json.Unmarshal([]byte(value), &e) != nil || e.Seq <= 0 {
		return 0
	}
	return 1
}

// Write puts page n, the fields' entries one a line, in out (a durable Put).
func Write(ctx context.Context, out storage.Store, batch string, n int, fs []Field) error {
	var buf bytes.Buffer
	for _, f := range fs {
		for _, line := range listed.Lines([]byte(f.Value)) {
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	if err := out.Put(ctx, PageKey(batch, n), &buf, int64(buf.Len()), "application/x-ndjson"); err != nil {
		return fmt.Errorf("spill: write page %d of %s: %w", n, batch, err)
	}
	return nil
}

// commitScript: KEYS batch, items, lock; ARGV page number, holder, then
// name, SHA-1 of the value, entries per field (a digest, not the value:
// a page's values do not travel back to Redis). Answers the entries moved, -1 when the
// lock is not the holder's or the batch has no meta, -2 when the page was
// counted already (another spill).
var commitScript = redis.NewScript(`
if redis.call('GET', KEYS[3]) ~= ARGV[2] or redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'spilled_pages') or '0') ~= tonumber(ARGV[1]) then return -2 end
local moved, lf, le = 0, 0, 0
for i = 3, #ARGV, 3 do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v and redis.sha1hex(v) == ARGV[i+1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    moved = moved + tonumber(ARGV[i+2])
    if string.sub(ARGV[i], 1, 8) == '~listed:' then lf, le = lf + 1, le + tonumber(ARGV[i+2]) end
  end
end
redis.call('HINCRBY', KEYS[1], 'spilled_pages', 1)
redis.call('HINCRBY', KEYS[1], 'spilled_entries', moved)
if lf > 0 then
  redis.call('HINCRBY', KEYS[1], 'listed_fields', -lf)
  redis.call('HINCRBY', KEYS[1], 'listed_entries', -le)
end
return moved
`)

// Commit deletes the fields of page n that still hold what the page holds
// and counts the page, if spilled_pages is still n and holder holds the
// lock. It returns how many entries left the hash; ok is false when
// nothing was done (the lock or the page number moved on).
func Commit(ctx context.Context, rdb redis.Scripter, k Keys, n int, holder string, fs []Field) (moved int, ok bool, err error) {
	args := make([]any, 0, 2+3*len(fs))
	args = append(args, n, holder)
	for _, f := range fs {
		sum := sha1.Sum([]byte(f.Value))
		args = append(args, f.Name, hex.EncodeToString(sum[:]), f.Entries)
	}
	r, err := commitScript.Run(ctx, rdb, []string{k.Batch, k.Items, k.Lock}, args...).Int()
	if err != nil {
		return 0, false, fmt.Errorf("spill: commit page %d: %w", n, err)
	}
	return max(r, 0), r >= 0, nil
}

// Page moves one page of the batch's spillable entries to out, when at
// least size/2 are spillable (fewer: not worth a page yet, and 0). The
// caller holds the lock (k.Lock) as holder. It returns the entries moved.
func Page(ctx context.Context, rdb redis.UniversalClient, k Keys, out storage.Store, batch string, size, listedBelow int, holder string) (int, error) {
	n, fs, err := Collect(ctx, rdb, k, size, listedBelow)
	entries := 0
	for _, f := range fs {
		entries += f.Entries
	}
	if err != nil || entries == 0 || entries < size/2 {
		return 0, err
	}
	if err := Write(ctx, out, batch, n, fs); err != nil {
		return 0, err
	}
	moved, _, err := Commit(ctx, rdb, k, n, holder, fs)
	return moved, err
}

// Run moves pages of a batch's spillable entries to out while its items
// hash holds 2×size entries or more (Held), under the batch's spill lock (k.Lock,
// held at most lockTTL; a spill that finds it taken does nothing: its
// holder is at work). listed gives the feed's listed cursor (nil: 0),
// asked only when a spill is due. It returns the entries moved.
func Run(ctx context.Context, rdb redis.UniversalClient, k Keys, out storage.Store, batch string, size int, listed func(context.Context) (int, error), lockTTL time.Duration) (int, error) {
	if size <= 0 {
		size = DefaultPageSize
	}
	if n, err := Held(ctx, rdb, k); err != nil || n < 2*size {
		return 0, err
	}
	holder := lease.Holder()
	release, ok, err := lease.TryAcquire(ctx, rdb, k.Lock, holder, lockTTL)
	if err != nil || !ok {
		return 0, err
	}
	defer release()
	listedBelow := 0
	if listed != nil {
		if listedBelow, err = listed(ctx); err != nil {
			return 0, err
		}
	}
	// A spill outlasting its lock must not write a page another writes:
	// it stops at half the lock's life.
	ctx, cancel := context.WithTimeout(ctx, lockTTL/2)
	defer cancel()
	total := 0
	for {
		moved, err := Page(ctx, rdb, k, out, batch, size, listedBelow, holder)
		if total += moved; err != nil || moved == 0 {
			return total, err
		}
		if n, err := Held(ctx, rdb, k); err != nil || n < 2*size {
			return total, err
		}
	}
}

// Held is how many entries the items hash holds: its fields, a listing
// chunk counted as its entries (the batch's listed_fields and
// listed_entries).
func Held(ctx context.Context, rdb redis.UniversalClient, k Keys) (int, error) {
	var n *redis.IntCmd
	var lf *redis.SliceCmd
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, lf = p.HLen(ctx, k.Items), p.HMGet(ctx, k.Batch, "listed_fields", "listed_entries")
		return nil
	}); err != nil {
		return 0, fmt.Errorf("spill: %w", err)
	}
	v := lf.Val()
	fs, _ := v[0].(string)
	es, _ := v[1].(string)
	f, _ := strconv.Atoi(fs)
	e, _ := strconv.Atoi(es)
	return int(n.Val()) - f + e, nil
}

// ReadPage returns the lines (one entry's JSON each) of page n.
func ReadPage(ctx context.Context, out storage.Store, batch string, n int) ([][]byte, error) {
	rc, err := out.Get(ctx, PageKey(batch, n), nil)
	if err != nil {
		return nil, fmt.Errorf("spilled entries page %d of %s: %w", n, batch, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("spilled entries page %d of %s: %w", n, batch, err)
	}
	return listed.Lines(data), nil
}
