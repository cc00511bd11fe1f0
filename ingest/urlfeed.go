package ingest

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/llamapipe/llamapipe/ingest/feedfile"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// A feed source ("feed:catalog.csv", "feed:s3://bucket/feeds/nightly.jsonl")
// is a CSV file with a header, or JSONL, whose rows give an image URL
// (column url, image_url or image) and optionally sku, name and key. Each
// row is an image item whose Ref names the feed (Location), the row's key
// (Key: the key column, else the URL's host and path) and the URL (Fetch);
// the workers fetch it (worker/feedfetch), ingest never does.
const feedScheme = "feed:"

// maxFeedBytes caps a feed file.
const maxFeedBytes = 256 << 20

// openFeed opens the folder of a feed file as a source.
func (in *Ingester) openFeed(ctx context.Context, s string, index int) (*source, error) {
	loc := strings.TrimPrefix(s, feedScheme)
	dir, file := path.Split(loc)
	if file == "" {
		return nil, fmt.Errorf("source %s: a feed names a file (feed:catalog.csv or feed:s3://bucket/catalog.jsonl)", s)
	}
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	st, err := in.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s, err)
	}
	return &source{index: index, url: feedScheme + strings.TrimRight(st.Location(), "/") + "/" + file, store: st, feed: file}, nil
}

// feedRows reads and parses a feed file.
func (in *Ingester) feedRows(ctx context.Context, src *source) ([]feedfile.Row, error) {
	rc, err := src.store.Get(ctx, src.feed, nil)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", src.url, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxFeedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", src.url, err)
	}
	if len(data) > maxFeedBytes {
		return nil, fmt.Errorf("feed %s: over %d bytes", src.url, maxFeedBytes)
	}
	rows, err := feedfile.Parse(src.feed, data)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", src.url, err)
	}
	return rows, nil
}

// listFeed reads a feed file and hands each row over as a candidate.
func (in *Ingester) listFeed(ctx context.Context, src *source, seen map[string]bool, cands chan<- candidate) error {
	rows, err := in.feedRows(ctx, src)
	if err != nil {
		return err
	}
	for _, r := range rows {
		id := jobs.ItemID(src.url, r.Key)
		if seen[id] {
			continue // the same row (key) twice
		}
		seen[id] = true
		select {
		case cands <- candidate{src: src, info: storage.ObjectInfo{Key: r.Key}, row: &r}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// feedItem is the item of a feed row: an image to caption, fetched by the
// worker from its URL.
func (pr *prepared) feedItem(it Item, r *feedfile.Row) Item {
	it.Ref.Fetch, it.Ref.Size, it.Kind = r.URL, 0, jobs.KindImage
	it.Ref.SKU, it.Ref.Name = r.SKU, r.Name
	switch {
	case r.Err != "":
		it.Failed, it.Skip = true, "feed row: "+r.Err
	case pr.o.Task == jobs.TaskSummarize:
		it.Skip = "not a document: feed rows are images and --task summarize processes documents only"
	default:
		it.Task = jobs.TaskCaption
		it.Fingerprint = pr.fingerprint(it, it.Task)
	}
	return it
}
