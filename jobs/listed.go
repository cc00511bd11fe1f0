package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/llamapipe/llamapipe/jobs/listed"
)

// RecordListed records, in one Redis write (jobs/listed), the entries a
// listing chunk ended without queuing (skipped or failed, no cost): chunk
// is the chunk's offset in the batch's listing, so a resumed listing that
// records the same chunk again counts nothing twice. It returns how many
// entries it recorded. EntriesPage, EachEntry, Entries, EntryCount and
// Entry expand the chunk; Recorded does not see it (such items are never
// queued). Should the chunk hold other entries already (the listing
// changed before a resume), those not among them are recorded one by one.
func (t *Tracker) RecordListed(ctx context.Context, batch string, chunk int, es []Entry) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	counts, seen, uniq := map[string]int{}, map[string]bool{}, es[:0:0]
	for _, e := range es {
		if (e.Status != StatusSkipped && e.Status != StatusFailed) || e.Cost != 0 || e.InputTokens != 0 || e.OutputTokens != 0 {
			return 0, fmt.Errorf("record listed %s in batch %s: status %q or a cost: record it alone", e.Source, batch, e.Status)
		}
		if !seen[e.Item] {
			seen[e.Item] = true
			e.Results = append([]string{}, e.Results...)
			_ = enc.Encode(e) // an Entry always encodes
			counts[e.Status]++
			uniq = append(uniq, e)
		}
	}
	if len(uniq) == 0 {
		return 0, nil
	}
	items := BatchItemsKey(t.prefix, batch)
	r, err := listed.Record(ctx, t.rdb, BatchKey(t.prefix, batch), items, BatchSeriesKey(t.prefix, batch), chunk, buf.Bytes(), counts, LostTTL)
	switch {
	case err != nil:
		return 0, fmt.Errorf("batch %s: %w", batch, err)
	case r == listed.Gone:
		return 0, fmt.Errorf("record listing chunk %d: %w", chunk, t.missing(ctx, batch))
	case r == listed.Same:
		return 0, nil
	case r == listed.Differs: // record those the stored chunk does not hold
		old, err := t.rdb.HGet(ctx, items, listed.Field(chunk)).Bytes()
		had, derr := decodeField(batch, listed.Field(chunk), old)
		if err = cmp.Or(err, derr); err != nil {
			return 0, fmt.Errorf("listing chunk %d of batch %s: %w", chunk, batch, err)
		}
		for _, e := range had {
			uniq = slices.DeleteFunc(uniq, func(u Entry) bool { return u.Item == e.Item })
		}
		return t.RecordMany(ctx, batch, uniq)
	}
	return len(uniq), nil
}

// decodeField expands a field of the items hash: one entry, or a listing
// chunk's.
func decodeField(batch, field string, v []byte) ([]Entry, error) {
	lines := [][]byte{v}
	if listed.Is(field) {
		lines = listed.Lines(v)
	}
	out := make([]Entry, len(lines))
	for i, line := range lines {
		if err := json.Unmarshal(line, &out[i]); err != nil {
			return nil, fmt.Errorf("batch %s: bad entry %s: %w", batch, field, err)
		}
	}
	return out, nil
}
