package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// listedPrefix starts the items hash's fields that hold a listing chunk's
// entries (RecordListed); an item ID (hex) never starts with it.
const listedPrefix = "~listed:"

// recordListedScript stores a listing chunk's entries (JSONL, ARGV[2]) as
// one field ARGV[1] of the items hash and counts them (ARGV[4..]: status,
// count pairs) only the first time: the same value again is a no-op (0), a
// different one is refused (-2), a batch that is gone marks it lost (-1).
// BatchKey's listed_fields and listed_entries keep EntryCount right.
var recordListedScript = redis.NewScript(`
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

// RecordListed records, in one Redis write, the entries a listing chunk
// ended without queuing (skipped or failed, no cost): chunk numbers the
// chunk in the batch's listing (its offset), so a resumed listing that
// records the same chunk again counts nothing twice. It returns how many
// entries it recorded. Readers (EntriesPage, EachEntry, Entries,
// EntryCount, Entry) expand the chunk into its entries; Recorded does not
// see them (such items are never queued). Should the chunk's number hold
// other entries already (the listing changed before a resume), the
// entries not among them are recorded one by one (RecordMany).
func (t *Tracker) RecordListed(ctx context.Context, batch string, chunk int, es []Entry) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	counts, seen, uniq := map[string]int{}, map[string]bool{}, es[:0:0]
	for _, e := range es {
		if (e.Status != StatusSkipped && e.Status != StatusFailed) || e.Cost != 0 || e.InputTokens != 0 || e.OutputTokens != 0 {
			return 0, fmt.Errorf("record listed %s in batch %s: status %q with cost: record it alone", e.Source, batch, e.Status)
		}
		if seen[e.Item] {
			continue
		}
		seen[e.Item] = true
		e.Results = append([]string{}, e.Results...)
		_ = enc.Encode(e) // an Entry always encodes
		counts[e.Status]++
		uniq = append(uniq, e)
	}
	if len(uniq) == 0 {
		return 0, nil
	}
	field := listedPrefix + strconv.Itoa(chunk)
	args := []any{field, buf.Bytes(), LostTTL.Milliseconds()}
	for s, n := range counts {
		args = append(args, s, n)
	}
	keys := []string{BatchKey(t.prefix, batch), BatchItemsKey(t.prefix, batch), BatchSeriesKey(t.prefix, batch)}
	r, err := recordListedScript.Run(ctx, t.rdb, keys, args...).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("record listing chunk %d of batch %s: %w", chunk, batch, err)
	case r == -1:
		return 0, fmt.Errorf("record listing chunk %d: %w", chunk, t.missing(ctx, batch))
	case r == 0:
		return 0, nil
	case r == -2:
		old, err := t.rdb.HGet(ctx, keys[1], field).Bytes()
		if err != nil {
			return 0, fmt.Errorf("listing chunk %d of batch %s: %w", chunk, batch, err)
		}
		had, err := decodeListed(batch, field, old)
		if err != nil {
			return 0, err
		}
		in := map[string]bool{}
		for _, e := range had {
			in[e.Item] = true
		}
		rest := uniq[:0]
		for _, e := range uniq {
			if !in[e.Item] {
				rest = append(rest, e)
			}
		}
		return t.RecordMany(ctx, batch, rest)
	}
	return len(uniq), nil
}

// decodeListed expands a field of the items hash into its entries: a
// listing chunk's JSONL or one entry.
func decodeListed(batch, field string, v []byte) ([]Entry, error) {
	if !strings.HasPrefix(field, listedPrefix) {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("batch %s: bad entry %s: %w", batch, field, err)
		}
		return []Entry{e}, nil
	}
	var out []Entry
	dec := json.NewDecoder(bytes.NewReader(v))
	for dec.More() {
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("batch %s: bad %s: %w", batch, field, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// listedEntry finds item among a batch's listing chunks (a scan of the
// items hash's chunk fields, done only when the batch has some).
func (t *Tracker) listedEntry(ctx context.Context, batch, item string) (Entry, bool, error) {
	if n, _ := t.rdb.HGet(ctx, BatchKey(t.prefix, batch), "listed_fields").Int(); n == 0 {
		return Entry{}, false, nil
	}
	want := []byte(`"item":` + strconv.Quote(item))
	var cursor uint64
	for {
		kv, next, err := t.rdb.HScan(ctx, BatchItemsKey(t.prefix, batch), cursor, listedPrefix+"*", 100).Result()
		if err != nil {
			return Entry{}, false, fmt.Errorf("batch %s entry %s: %w", batch, item, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if !strings.Contains(kv[i+1], string(want)) {
				continue
			}
			es, err := decodeListed(batch, kv[i], []byte(kv[i+1]))
			for _, e := range es {
				if e.Item == item {
					return e, true, err
				}
			}
		}
		if cursor = next; cursor == 0 {
			return Entry{}, false, nil
		}
	}
}
