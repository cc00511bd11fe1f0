package ingest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest/sniff"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// Opener opens a store from a location URL (see storage/backends.Open).
type Opener func(ctx context.Context, location string) (storage.Store, error)

// Enqueuer is the part of *asynq.Client ingest uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Ingester creates batches.
type Ingester struct {
	Open    Opener
	Queue   Enqueuer
	Tracker *jobs.Tracker
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Options describe one batch.
type Options struct {
	// Sources are location URLs to list recursively.
	Sources []string
	// Out is the output location URL.
	Out string
	// Task is auto, summarize or caption. Empty means auto.
	Task string
	// Include and Exclude are doublestar globs ("**/*.pdf") matched against
	// each key relative to its source. An empty Include includes everything.
	Include, Exclude []string
	// MaxSize skips objects larger than this many bytes. Zero means 512 MiB.
	MaxSize int64
	// Queue is the asynq queue. Empty means "default".
	Queue string
	// MaxRetry is how often a failing item is retried. Zero means 5.
	MaxRetry int
	// Concurrency is how many objects are sniffed at once. Zero means 16.
	Concurrency int
	// Job holds the options workers need (language, ...).
	Job jobs.Options
	// Provider and Model are recorded in the batch for the report.
	Provider, Model string
	// BatchID, when set, names the batch (else a new ID is made).
	BatchID string
}

// Result summarises an ingest.
type Result struct {
	BatchID  string
	Total    int
	Enqueued int
	Skipped  int
	// Kinds counts items by kind (document, image, other).
	Kinds map[string]int
}

// NewBatchID returns a sortable, unique batch ID such as
// "20261125-101500-3f9a1c".
func NewBatchID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

type source struct {
	index int
	url   string
	store storage.Store
	// skipPrefix is a key prefix (relative to this source) that holds the
	// batch's own output and must not be ingested.
	skipPrefix string
}

type candidate struct {
	src  *source
	info storage.ObjectInfo
}

// Run lists the sources, creates the batch and enqueues its items. The batch
// exists (and is tracked) as soon as Run starts enqueueing; it is sealed with
// its total when listing ends, so workers can finish before listing does.
func (in *Ingester) Run(ctx context.Context, o Options) (Result, error) {
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	log := cmp.Or(in.Logger, slog.New(slog.DiscardHandler))
	o.Task = cmp.Or(o.Task, jobs.TaskAuto)
	o.Queue = cmp.Or(o.Queue, jobs.QueueDefault)
	o.MaxSize = cmp.Or(o.MaxSize, 512<<20)
	o.MaxRetry = cmp.Or(o.MaxRetry, 5)
	o.Concurrency = cmp.Or(o.Concurrency, 16)
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	outLoc, err := storage.ParseLocation(o.Out)
	if err != nil {
		return Result{}, fmt.Errorf("output: %w", err)
	}
	var sources []*source
	seenSrc := map[string]bool{}
	for _, s := range o.Sources {
		loc, err := storage.ParseLocation(s)
		if err != nil {
			return Result{}, fmt.Errorf("source: %w", err)
		}
		if seenSrc[loc.String()] {
			continue // the same source named twice
		}
		seenSrc[loc.String()] = true
		if loc == outLoc {
			return Result{}, fmt.Errorf("ingest: the output location %s is also a source: choose another --out", o.Out)
		}
		st, err := in.Open(ctx, s)
		if err != nil {
			return Result{}, fmt.Errorf("source %s: %w", s, err)
		}
		sources = append(sources, &source{index: len(sources), url: st.Location(), store: st, skipPrefix: insidePrefix(loc, outLoc)})
	}

	res := Result{BatchID: cmp.Or(o.BatchID, NewBatchID(now())), Kinds: map[string]int{}}
	b := jobs.Batch{ID: res.BatchID, Created: now().UTC(), Sources: o.Sources, Task: o.Task, Out: outLoc.String(),
		Queue: o.Queue, Options: o.Job, Provider: o.Provider, Model: o.Model}
	if err := in.Tracker.Create(ctx, b); err != nil {
		return res, err
	}
	log = log.With("batch_id", res.BatchID)
	log.InfoContext(ctx, "batch created", "sources", len(o.Sources), "task", o.Task, "out", b.Out)

	cands := make(chan candidate)
	var mu sync.Mutex
	var firstErr error
	setErr := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cands {
				kind, enq, err := in.one(ctx, b, o, len(sources), c)
				mu.Lock()
				if err == nil {
					res.Kinds[kind]++
					if enq {
						res.Enqueued++
					} else {
						res.Skipped++
					}
				}
				mu.Unlock()
				if err != nil {
					setErr(err)
				}
			}
		}()
	}

	seen := map[string]bool{}
	listErr := func() error {
		defer close(cands)
		for _, src := range sources {
			for info, err := range src.store.List(ctx, "", storage.ListOptions{Recursive: true}) {
				if err != nil {
					return fmt.Errorf("list %s: %w", src.url, err)
				}
				if info.IsPrefix || !selected(info.Key, src.skipPrefix, o.Include, o.Exclude) {
					continue
				}
				id := jobs.ItemID(src.url, info.Key)
				if seen[id] {
					continue // the same object through two overlapping sources
				}
				seen[id] = true
				select {
				case cands <- candidate{src: src, info: info}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}()
	wg.Wait()
	if listErr != nil {
		return res, listErr
	}
	if firstErr != nil {
		return res, firstErr
	}
	res.Total = len(seen)
	complete, err := in.Tracker.Seal(ctx, res.BatchID, res.Total)
	if err != nil {
		return res, err
	}
	if complete {
		if err := in.enqueueFinalize(ctx, res.BatchID, o.Queue); err != nil {
			return res, err
		}
	}
	log.InfoContext(ctx, "batch sealed", "total", res.Total, "enqueued", res.Enqueued, "skipped", res.Skipped)
	return res, nil
}

func (in *Ingester) enqueueFinalize(ctx context.Context, batch, queue string) error {
	t, err := jobs.NewFinalizeTask(batch, queue)
	if err != nil {
		return err
	}
	if _, err := in.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue finalize of %s: %w", batch, err)
	}
	return nil
}

// one classifies and enqueues (or records as skipped) one object. It
// reports the item's kind and whether it was enqueued. An error means the
// batch itself is in trouble (Redis down), not the item.
func (in *Ingester) one(ctx context.Context, b jobs.Batch, o Options, nsrc int, c candidate) (kind string, enqueued bool, err error) {
	ref := jobs.Ref{Location: c.src.url, Key: c.info.Key, ETag: c.info.ETag, Size: c.info.Size}
	item := jobs.ItemID(c.src.url, c.info.Key)
	entry := jobs.Entry{Item: item, Source: ref.URL(), ETag: ref.ETag, Size: ref.Size, Kind: jobs.KindOther, Status: jobs.StatusSkipped}
	skip := func(kind, typ, reason string) (string, bool, error) {
		entry.Kind, entry.Type, entry.Error = kind, typ, reason
		_, _, err := in.Tracker.Record(ctx, b.ID, entry)
		return kind, false, err
	}
	if c.info.Size == 0 {
		return skip(jobs.KindOther, "", "empty file (0 bytes)")
	}
	if c.info.Size > o.MaxSize {
		return skip(jobs.KindOther, "", fmt.Sprintf("too large: %d bytes is over the %d-byte limit (--max-size)", c.info.Size, o.MaxSize))
	}
	head, err := readHead(ctx, c.src.store, c.info.Key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return skip(jobs.KindOther, "", "source no longer exists (deleted after listing)")
		}
		return skip(jobs.KindOther, "", "unreadable: "+err.Error())
	}
	typ := sniff.Sniff(path.Base(c.info.Key), head)
	kind = typ.Kind()
	switch {
	case kind == "":
		return skip(jobs.KindOther, string(typ), fmt.Sprintf("unknown file type (%s): not a supported document or image", describe(typ)))
	case kind == jobs.KindImage && !decodableImage(typ):
		return skip(kind, string(typ), fmt.Sprintf("%s images are not supported: convert them to JPEG or PNG", strings.ToUpper(string(typ))))
	}
	task := o.Task
	switch {
	case task == jobs.TaskAuto && kind == jobs.KindDocument:
		task = jobs.TaskSummarize
	case task == jobs.TaskAuto && kind == jobs.KindImage:
		task = jobs.TaskCaption
	case task == jobs.TaskCaption && kind != jobs.KindImage:
		return skip(kind, string(typ), "not an image: --task caption processes images only")
	case task == jobs.TaskSummarize && kind != jobs.KindDocument:
		return skip(kind, string(typ), "not a document: --task summarize processes documents only")
	}
	p := jobs.ItemPayload{Batch: b.ID, Item: item, Source: ref, Type: string(typ), Kind: kind, Task: task,
		Out: b.Out, ResultBase: jobs.ResultBase(c.src.index, nsrc, c.src.url, c.info.Key), Options: o.Job}
	t, err := jobs.NewItemTask(p, o.Queue, o.MaxRetry)
	if err != nil {
		return skip(kind, string(typ), "cannot be queued: "+err.Error())
	}
	if _, err := in.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return kind, false, fmt.Errorf("enqueue %s: %w", ref.URL(), err)
	}
	return kind, true, nil
}

func describe(t sniff.Type) string {
	if t == "" || t == sniff.Unknown {
		return "unrecognised content"
	}
	return string(t)
}

// decodableImage reports whether workers can decode an image type.
func decodableImage(t sniff.Type) bool {
	switch t {
	case sniff.JPEG, sniff.PNG, sniff.GIF, sniff.WebP, sniff.BMP, sniff.TIFF:
		return true
	}
	return false
}

func readHead(ctx context.Context, st storage.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key, &storage.Range{Offset: 0, Length: sniff.HeadSize})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	head, err := io.ReadAll(io.LimitReader(rc, sniff.HeadSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return head, nil
}

// selected applies the output exclusion and the include/exclude globs.
func selected(key, skipPrefix string, include, exclude []string) bool {
	if skipPrefix != "" && (key == skipPrefix || strings.HasPrefix(key, skipPrefix+"/")) {
		return false
	}
	if len(include) > 0 && !matchAny(include, key) {
		return false
	}
	return !matchAny(exclude, key)
}

func matchAny(globs []string, key string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, key); ok {
			return true
		}
		// A glob without a slash also matches the base name: "*.pdf".
		if !strings.Contains(g, "/") {
			if ok, _ := doublestar.Match(g, path.Base(key)); ok {
				return true
			}
		}
	}
	return false
}

// insidePrefix returns out's prefix relative to src when out lies inside
// src (results written into the folder being ingested), else "".
func insidePrefix(src, out storage.Location) string {
	if src.Scheme != out.Scheme || src.Bucket != out.Bucket {
		return ""
	}
	if src.Prefix == "" && out.Scheme == "s3" {
		return out.Prefix
	}
	sep := "/"
	if strings.HasPrefix(out.Prefix, src.Prefix+sep) {
		return strings.TrimPrefix(out.Prefix, src.Prefix+sep)
	}
	return ""
}

func (o Options) validate() error {
	if len(o.Sources) == 0 {
		return errors.New("ingest: no source given")
	}
	if o.Out == "" {
		return errors.New("ingest: no output location given (--out)")
	}
	switch o.Task {
	case jobs.TaskAuto, jobs.TaskSummarize, jobs.TaskCaption:
	default:
		return fmt.Errorf("ingest: unknown task %q (auto, summarize or caption)", o.Task)
	}
	if !jobs.ValidQueue(o.Queue) {
		return fmt.Errorf("ingest: unknown queue %q (critical, default or nightly)", o.Queue)
	}
	for _, g := range append(append([]string{}, o.Include...), o.Exclude...) {
		if !doublestar.ValidatePattern(g) {
			return fmt.Errorf("ingest: bad glob %q", g)
		}
	}
	return nil
}
