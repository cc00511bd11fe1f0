package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

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

type feedRow struct {
	URL, SKU, Name, Key string
	line                int
	err                 string
}

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
func (in *Ingester) feedRows(ctx context.Context, src *source) ([]feedRow, error) {
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
	rows, err := parseFeed(src.feed, data)
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

// parseFeed reads JSONL (a name ending .jsonl/.ndjson, or content
// starting with "{") or CSV with a header.
func parseFeed(name string, data []byte) ([]feedRow, error) {
	var rows []feedRow
	ext := strings.ToLower(path.Ext(name))
	if ext == ".jsonl" || ext == ".ndjson" || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			r := feedRow{line: n}
			if err := json.Unmarshal(line, &m); err != nil {
				r.err = fmt.Sprintf("line %d is not JSON: %v", n, err)
			}
			str := func(keys ...string) string {
				for _, k := range keys {
					if v, ok := m[k]; ok && v != nil {
						return strings.TrimSpace(fmt.Sprint(v))
					}
				}
				return ""
			}
			r.URL, r.SKU, r.Name, r.Key = str("url", "image_url", "image"), str("sku"), str("name"), str("key")
			rows = append(rows, finishRow(r))
		}
		return rows, sc.Err()
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	get := func(rec []string, keys ...string) string {
		for _, k := range keys {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
		}
		return ""
	}
	if _, ok := col["url"]; !ok {
		if _, ok := col["image_url"]; !ok {
			if _, ok := col["image"]; !ok {
				return nil, fmt.Errorf("CSV header %v has no url, image_url or image column", head)
			}
		}
	}
	for n := 2; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		r := feedRow{line: n}
		if err != nil {
			r.err = fmt.Sprintf("line %d: %v", n, err)
		} else {
			r.URL, r.SKU, r.Name, r.Key = get(rec, "url", "image_url", "image"), get(rec, "sku"), get(rec, "name"), get(rec, "key")
		}
		rows = append(rows, finishRow(r))
	}
}

// finishRow checks the URL and gives the row a key.
func finishRow(r feedRow) feedRow {
	u, err := url.Parse(r.URL)
	switch {
	case r.err != "":
	case r.URL == "":
		r.err = fmt.Sprintf("line %d has no image URL", r.line)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		r.err = fmt.Sprintf("line %d: %q is not an http(s) URL", r.line, r.URL)
	}
	if r.Key == "" {
		if u != nil && u.Host != "" {
			r.Key = strings.TrimSuffix(u.Host+u.EscapedPath(), "/")
			if u.RawQuery != "" {
				r.Key += "_" + jobs.ItemID("", u.RawQuery)[:8]
			}
		} else {
			r.Key = fmt.Sprintf("line-%d", r.line)
		}
	}
	r.Key = strings.TrimLeft(path.Clean("/"+r.Key), "/")
	return r
}

// feedItem is the item of a feed row: an image to caption, fetched by the
// worker from its URL.
func (pr *prepared) feedItem(it Item, r *feedRow) Item {
	it.Ref.Fetch, it.Ref.Size, it.Kind = r.URL, 0, jobs.KindImage
	switch {
	case r.err != "":
		it.Failed, it.Skip = true, "feed row: "+r.err
	case pr.o.Task == jobs.TaskSummarize:
		it.Skip = "not a document: feed rows are images and --task summarize processes documents only"
	default:
		it.Task = jobs.TaskCaption
		it.Fingerprint = pr.fingerprint(it, it.Task)
	}
	return it
}
