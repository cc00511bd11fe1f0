package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// Event is one S3 event notification record: an object was created (or
// overwritten) in a bucket.
type Event struct {
	// Name is the event name, e.g. "s3:ObjectCreated:Put" (MinIO) or
	// "ObjectCreated:Put" (AWS).
	Name   string
	Bucket string
	// Key is the object key, decoded (S3 sends it URL-encoded).
	Key  string
	ETag string
	Size int64
}

// Created reports whether the event announces a new object version.
func (e Event) Created() bool {
	return strings.HasPrefix(strings.TrimPrefix(e.Name, "s3:"), "ObjectCreated:")
}

// s3Record is the part of an S3 event record we read; AWS and MinIO share
// the shape.
type s3Record struct {
	EventName string `json:"eventName"`
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"`
			Size int64  `json:"size"`
			ETag string `json:"eTag"`
		} `json:"object"`
	} `json:"s3"`
}

// ParseEvents decodes one notification message: an S3 event document
// ({"Records": [...]}, as AWS sends to SQS and MinIO to webhooks), the same
// wrapped in an SNS notification, or a
// MinIO Redis target's "access" format entry ([{"Event": [...],
// "EventTime": ...}]). Test events ("s3:TestEvent") yield no records.
func ParseEvents(msg []byte) ([]Event, error) {
	var recs []s3Record
	trimmed := strings.TrimSpace(string(msg))
	switch {
	case strings.HasPrefix(trimmed, "["):
		var access []struct {
			Event []s3Record `json:"Event"`
		}
		if err := json.Unmarshal(msg, &access); err != nil {
			return nil, fmt.Errorf("watch: bad event message: %w", err)
		}
		for _, a := range access {
			recs = append(recs, a.Event...)
		}
	case strings.HasPrefix(trimmed, "{"):
		var doc struct {
			Records []s3Record `json:"Records"`
			// An SNS notification (S3 → SNS → SQS) wraps the S3 document.
			Type    string `json:"Type"`
			Message string `json:"Message"`
		}
		if err := json.Unmarshal(msg, &doc); err != nil {
			return nil, fmt.Errorf("watch: bad event message: %w", err)
		}
		if doc.Type == "Notification" && doc.Records == nil {
			return ParseEvents([]byte(doc.Message))
		}
		recs = doc.Records
	default:
		return nil, errors.New("watch: bad event message: not a JSON object or array")
	}
	out := make([]Event, 0, len(recs))
	for _, r := range recs {
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			return nil, fmt.Errorf("watch: bad object key %q in event: %w", r.S3.Object.Key, err)
		}
		out = append(out, Event{Name: r.EventName, Bucket: r.S3.Bucket.Name, Key: key,
			ETag: strings.Trim(r.S3.Object.ETag, `"`), Size: r.S3.Object.Size})
	}
	return out, nil
}

// Handle adds the objects that events announce, when they lie in the
// watched inbox and were not seen in that version. Events for other buckets
// or prefixes, deletions and test events are ignored. It is idempotent: a
// redelivered event adds nothing.
func (w *Watcher) Handle(ctx context.Context, events []Event) (Stats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st Stats
	for _, ev := range events {
		if !ev.Created() {
			continue
		}
		source, key, ok := w.match(ev)
		if !ok {
			continue
		}
		st.Seen++
		info := storage.ObjectInfo{Key: key, ETag: ev.ETag, Size: ev.Size}
		if info.ETag == "" {
			var err error
			if info, err = w.cfg.Feed.Stat(ctx, source, key); err != nil {
				if errors.Is(err, storage.ErrNotExist) {
					continue // deleted since
				}
				return st, fmt.Errorf("watch %s: stat %s: %w", w.cfg.Name, key, err)
			}
		}
		id := jobs.ItemID(w.cfg.Feed.Sources()[source], key)
		prev, err := w.cfg.Redis.HGet(ctx, w.seenKey(), id).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return st, fmt.Errorf("watch %s: read state: %w", w.cfg.Name, err)
		}
		if err := w.consider(ctx, source, info, prev, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// match finds the watched S3 source an event's object lies in and its key
// relative to that source.
func (w *Watcher) match(ev Event) (int, string, bool) {
	for i, loc := range w.srcs {
		if loc.Scheme != "s3" || loc.Bucket != ev.Bucket {
			continue
		}
		key := ev.Key
		if loc.Prefix != "" {
			if !strings.HasPrefix(key, loc.Prefix+"/") {
				continue
			}
			key = strings.TrimPrefix(key, loc.Prefix+"/")
		}
		if key == "" || !w.cfg.Feed.Selected(i, key) {
			continue
		}
		return i, key, true
	}
	return 0, "", false
}

// An EventSource delivers notification messages. Next blocks until a
// message arrives (or ctx ends) and returns it with an ack that removes it
// for good once it was handled; an unacknowledged message is delivered
// again (after a restart).
type EventSource interface {
	Next(ctx context.Context) (msg []byte, ack func(context.Context) error, err error)
}

// consume handles messages from src until ctx ends. A message that cannot
// be parsed is logged and dropped (acknowledged): retrying will not mend it.
func (w *Watcher) consume(ctx context.Context, src EventSource) error {
	for {
		msg, ack, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.ErrorContext(ctx, "reading events failed: retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
			continue
		}
		evs, err := ParseEvents(msg)
		if err != nil {
			w.log.ErrorContext(ctx, "dropping an event message that cannot be read", "error", err)
			if err := ack(ctx); err != nil && ctx.Err() == nil {
				w.log.ErrorContext(ctx, "acknowledging an event failed", "error", err)
			}
			continue
		}
		for {
			st, err := w.Handle(ctx, evs)
			if err == nil {
				if st.Added > 0 {
					w.log.DebugContext(ctx, "event", "added", st.Added)
				}
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			w.log.ErrorContext(ctx, "handling an event failed: retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		if err := ack(ctx); err != nil && ctx.Err() == nil {
			w.log.ErrorContext(ctx, "acknowledging an event failed", "error", err)
		}
	}
}

// RedisList reads the events MinIO's Redis notification target appends to a
// list (format "access"). Messages move atomically to a processing list
// while they are handled, so a watcher that dies mid-message handles it
// again when it restarts.
type RedisList struct {
	Client redis.UniversalClient
	// Key is the list MinIO writes (MINIO_NOTIFY_REDIS_KEY_<ID>).
	Key string
	// Processing holds messages being handled. Empty means
	// jobs.WatchEventsProcessingKey(Key): Key + ":processing".
	Processing string

	recovered bool
}

func (r *RedisList) processing() string {
	if r.Processing != "" {
		return r.Processing
	}
	return jobs.WatchEventsProcessingKey(r.Key)
}

// Next implements EventSource. After a restart it first returns the
// messages a previous watcher took but did not finish.
func (r *RedisList) Next(ctx context.Context) ([]byte, func(context.Context) error, error) {
	var msg string
	var err error
	if !r.recovered {
		msg, err = r.Client.LIndex(ctx, r.processing(), 0).Result()
		if errors.Is(err, redis.Nil) {
			r.recovered = true
		} else if err != nil {
			return nil, nil, fmt.Errorf("events %s: %w", r.Key, err)
		} else {
			return []byte(msg), r.ackFunc(msg), nil
		}
	}
	for {
		msg, err = r.Client.BLMove(ctx, r.Key, r.processing(), "LEFT", "RIGHT", time.Second).Result()
		if errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			if t, terr := r.Client.Type(ctx, r.Key).Result(); terr == nil && t != "list" && t != "none" {
				return nil, nil, fmt.Errorf("events %s is a %s, not a list: configure MinIO's Redis target with format \"access\"", r.Key, t)
			}
			return nil, nil, fmt.Errorf("events %s: %w", r.Key, err)
		}
		return []byte(msg), r.ackFunc(msg), nil
	}
}

func (r *RedisList) ackFunc(msg string) func(context.Context) error {
	return func(ctx context.Context) error {
		return r.Client.LRem(ctx, r.processing(), 1, msg).Err()
	}
}
