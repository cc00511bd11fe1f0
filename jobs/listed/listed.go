// Package listed keeps a listing chunk's entries as one field of a batch's
// items hash (jobs.BatchItemsKey): the entries a bounded ingest ends
// without queuing (skipped, unchanged, failed at listing), one Redis write
// a chunk instead of one a item. The jobs package's Tracker.RecordListed
// writes them and its readers expand them; entries are JSON lines here.
package listed

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Prefix starts the items hash's fields that hold a listing chunk; an item
// ID (hex) never starts with it.
const Prefix = "~listed:"

// Field is the field of the chunk that starts at offset chunk of the
// batch's listing.
func Field(chunk int) string { return Prefix + strconv.Itoa(chunk) }

// Is reports whether a field of the items hash is a listing chunk.
func Is(field string) bool { return strings.HasPrefix(field, Prefix) }

// Lines splits a chunk's value into its entries' JSON.
func Lines(v []byte) [][]byte {
	var out [][]byte
	for line := range bytes.Lines(v) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
}

// What Record did.
const (
	Stored  = 1  // the chunk is stored and counted
	Same    = 0  // the chunk was stored before with the same entries
	Differs = -2 // the chunk was stored before with other entries
	Gone    = -1 // the batch's record has no meta: marked lost (TTL lostTTL)
)

// script stores the chunk (ARGV[2]) as field ARGV[1] of KEYS[2] and counts
// its entries (ARGV[4..]: status, count pairs) in KEYS[1] (and the
// minute's series, KEYS[3]) only the first time. KEYS[1]'s listed_fields
// and listed_entries let EntryCount count a chunk as its entries.
var script = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then
  redis.call('HSET', KEYS[1], 'lost', '1')
  if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
  return -1
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  if old == ARGV[2] then return 0 end
  return -2
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'listed_fields', 1)
local m = math.floor(tonumber(redis.call('TIME')[1]) / 60) .. ':'
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'listed_entries', ARGV[i+1])
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1])
  redis.call('HINCRBY', KEYS[3], m .. ARGV[i], ARGV[i+1])
end
if redis.call('PTTL', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', KEYS[1])) end
return 1
`)

// Record stores a chunk's entries (JSONL) in one script call: batchKey,
// itemsKey and seriesKey are the batch's jobs.BatchKey, BatchItemsKey and
// BatchSeriesKey; counts are the entries by status. It returns Stored,
// Same, Differs or Gone.
func Record(ctx context.Context, rdb redis.Scripter, batchKey, itemsKey, seriesKey string, chunk int, jsonl []byte, counts map[string]int, lostTTL time.Duration) (int, error) {
	args := []any{Field(chunk), jsonl, lostTTL.Milliseconds()}
	for s, n := range counts {
		args = append(args, s, n)
	}
	r, err := script.Run(ctx, rdb, []string{batchKey, itemsKey, seriesKey}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("record listing chunk %d: %w", chunk, err)
	}
	return r, nil
}

// Find returns the JSON of item's entry among the listing chunks of
// itemsKey (nil: none), scanning the chunk fields only.
func Find(ctx context.Context, rdb redis.UniversalClient, itemsKey, item string) ([]byte, error) {
	want := []byte(`{"item":` + strconv.Quote(item) + `,`) // an Entry's first field
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, itemsKey, cursor, Prefix+"*", 100).Result()
		if err != nil {
			return nil, fmt.Errorf("listing chunks: %w", err)
		}
		for i := 1; i < len(kv); i += 2 {
			for _, line := range Lines([]byte(kv[i])) {
				if bytes.HasPrefix(line, want) {
					return line, nil
				}
			}
		}
		if cursor = next; cursor == 0 {
			return nil, nil
		}
	}
}

// ScanCount is the HSCAN count that reads about n entries a page of
// itemsKey, whose listing chunks hold many entries a field (batchKey's
// listed_fields and listed_entries count them): n when it has none.
func ScanCount(ctx context.Context, rdb redis.UniversalClient, batchKey, itemsKey string, n int) int {
	v, err := rdb.HMGet(ctx, batchKey, "listed_fields", "listed_entries").Result()
	if err != nil || len(v) != 2 {
		return n
	}
	fs, _ := v[0].(string)
	es, _ := v[1].(string)
	f, _ := strconv.Atoi(fs)
	e, _ := strconv.Atoi(es)
	if f == 0 || e <= f {
		return n
	}
	fields, err := rdb.HLen(ctx, itemsKey).Result()
	if err != nil || fields == 0 {
		return n
	}
	return max(1, int(int64(n)*fields/(fields-int64(f)+int64(e))))
}
