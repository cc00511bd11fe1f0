package ingest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest/feedfile"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
	"github.com/llamapipe/llamapipe/prompts"
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
	Open  Opener
	Queue Enqueuer
	// Tracker keeps the batch records (a *jobs.Tracker).
	Tracker Records
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Provider and Model are used for ingest tasks that name none (the
	// workers' own model, so fingerprints match what they make).
	Provider, Model string
	// Prompts are the workers' prompt overrides, for ingest tasks.
	Prompts prompts.Set
	// Feeds keeps bounded batches' feeds (Spec.MaxQueued); nil: batches
	// are not bounded (MaxQueued is ignored).
	Feeds *feed.Store
}

// Options describe one batch: its Spec, and how ingest goes about it.
type Options struct {
	// Spec is the batch asked for. Ingest fills in its defaults: Task auto,
	// Queue default, MaxSize 512 MiB, MaxRetry 5.
	jobs.Spec
	// Concurrency is how many objects are sniffed at once. Zero means 16.
	Concurrency int
	// PageSize is how many listed objects make one page of a bounded
	// batch (Spec.MaxQueued): one step of its resumable listing. Zero
	// means 1000.
	PageSize int
	// BatchID, when set, names the batch (else a new ID is made).
	BatchID string
	// Prompts are the prompt overrides the workers use; their versions go
	// into the fingerprints. Nil: the embedded prompts.
	Prompts prompts.Set
	// Items, when set, are the batch's objects (instead of listing the
	// sources): a retry of failed items. Sources then only describe them.
	Items []ItemRef
	// ItemsFrom, when set, streams the batch's objects instead of Items
	// (a retry of a large batch, read page by page): it calls yield for
	// each and stops at yield's first error, returning it.
	ItemsFrom func(ctx context.Context, yield func(ItemRef) error) error
	// RetryOf names the batch an Items batch retries.
	RetryOf string
	// NoDocuments, when set, says why the model cannot summarize documents
	// (it takes no request without an image: DashScope's Llama 3.2
	// vision). Under Task auto the batch's documents are then skipped with
	// that reason (the plan and the manifest say so); Task summarize is
	// refused. Default "": documents are summarized.
	NoDocuments string
	// Resume continues a batch named by BatchID that exists already (an
	// ingest task retried after a crash): items already queued or recorded
	// are not queued or counted twice.
	Resume bool
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
	// ignore are the globs of the source's IgnoreFile.
	ignore []string
	// feed, when set, is the key in store of a feed file whose rows are
	// the source's items (url is then "feed:" and the file's location).
	feed string
}

type candidate struct {
	src  *source
	info storage.ObjectInfo
	// resultBase, when set, overrides the result base computed from the
	// source (explicit items keep the one they had).
	resultBase string
	// gone is set for an explicit item that no longer exists.
	gone bool
	// row is a feed row (info.Key is its key).
	row *feedfile.Row
	// part is, for a retried email attachment, its part path in the
	// message info.Key.
	part string
}

// ItemRef names one object for a batch of explicit items (a retry).
type ItemRef struct {
	Location, Key, ResultBase string
	// Part is an email attachment's part path in the message Key.
	Part string
}

// Item is one listed object and what ingest decided about it.
type Item struct {
	// ID is the item's deterministic ID (jobs.ItemID).
	ID string
	// Ref points at the object; Store is the store it lives in.
	Ref   jobs.Ref
	Store storage.Store
	// Type is the sniffed type, Kind its kind ("document", "image" or
	// "other"), Task the task it gets (summarize or caption).
	Type jobs.FileType
	Kind jobs.Kind
	Task string
	// ResultBase is the key its results are named from.
	ResultBase string
	// Skip is the reason it is skipped; empty when it is to be processed.
	Skip string
	// Failed records a Skip as a failure (a name that lies about its
	// content): the item is in the manifest as failed, not skipped.
	Failed bool
	// Unchanged is true when it is skipped because its results are current.
	Unchanged bool
	// Parent is, for an email attachment, its message's source URL.
	Parent string
	// Fingerprint is what its result is made from (fingerprint.Of).
	Fingerprint string
	// Seq numbers it in a bounded batch's listing: its listing offset + 1
	// (jobs.ItemPayload.Seq), the same when a resumed listing lists it.
	Seq int64
	// Head is the object's first bytes (up to sniff.HeadSize).
	Head []byte
}

func (in *Ingester) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// prepared is a validated batch request with its sources open.
type prepared struct {
	o       Options
	out     storage.Location
	sources []*source
	// current holds the fingerprint markers found under the output
	// location: results that need not be made again.
	current map[string]bool
	// currentDone is closed once current is listed (or currentErr says
	// why it could not be): the markers are listed while the sources are.
	currentDone chan struct{}
	currentErr  error
	// prompts is the prompt version of each task.
	prompts map[string]string
}

func (in *Ingester) prepare(ctx context.Context, o Options) (*prepared, error) {
	o.Task = cmp.Or(o.Task, jobs.TaskAuto)
	o.Queue = cmp.Or(o.Queue, jobs.QueueDefault)
	o.MaxSize = cmp.Or(o.MaxSize, 512<<20)
	o.MaxRetry = cmp.Or(o.MaxRetry, 5)
	o.Concurrency = cmp.Or(o.Concurrency, 16)
	o.PageSize = cmp.Or(o.PageSize, pageSize)
	if err := o.validate(); err != nil {
		return nil, err
	}
	outLoc, err := storage.ParseLocation(o.Out)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	if o.Products != "" {
		if o.Products, err = in.checkSidecar(ctx, o.Products); err != nil {
			return nil, err
		}
	}
	// Record sources as full locations (a relative folder means nothing to
	// whoever reads the batch later).
	canon := make([]string, 0, len(o.Sources))
	for _, s := range o.Sources {
		if strings.HasPrefix(s, feedScheme) {
			canon = append(canon, s)
		} else if loc, err := storage.ParseLocation(s); err == nil {
			canon = append(canon, loc.String())
		} else {
			canon = append(canon, s)
		}
	}
	o.Sources = canon
	pr := &prepared{o: o, out: outLoc}
	seenSrc := map[string]bool{}
	for _, s := range o.Sources {
		if o.explicitItems() {
			break // explicit items open their own locations
		}
		if strings.HasPrefix(s, feedScheme) {
			src, err := in.openFeed(ctx, s, len(pr.sources))
			if err != nil {
				return nil, err
			}
			pr.sources = append(pr.sources, src)
			continue
		}
		loc, err := storage.ParseLocation(s)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if seenSrc[loc.String()] {
			continue // the same source named twice
		}
		seenSrc[loc.String()] = true
		if loc == outLoc {
			return nil, fmt.Errorf("ingest: the output location %s is also a source: choose another --out", o.Out)
		}
		st, err := in.Open(ctx, s)
		if err != nil {
			return nil, &SourceError{Source: s, Err: err}
		}
		if c, ok := st.(interface{ CheckRoot() error }); ok { // a local folder: never created for a source
			if err := c.CheckRoot(); err != nil {
				return nil, &SourceError{Source: s, Err: err}
			}
		}
		ignore, err := readIgnore(ctx, st)
		if err != nil {
			return nil, &SourceError{Source: s, Err: err}
		}
		pr.sources = append(pr.sources, &source{index: len(pr.sources), url: st.Location(), store: st, skipPrefix: insidePrefix(loc, outLoc), ignore: ignore})
	}
	pr.prompts = map[string]string{}
	for _, task := range []string{jobs.TaskSummarize, jobs.TaskCaption} {
		v, err := o.Prompts.TaskVersion(task)
		if err != nil {
			return nil, err
		}
		pr.prompts[task] = v
	}
	v, err := o.Prompts.TypeVersion(jobs.TaskSummarize, string(jobs.FileEML))
	if err != nil {
		return nil, err
	}
	pr.prompts[mailPrompts] = v
	pr.currentDone = make(chan struct{})
	if o.Force {
		close(pr.currentDone)
		return pr, nil
	}
	go func() {
		defer close(pr.currentDone)
		pr.current, pr.currentErr = in.currentResults(ctx, o.Out)
	}()
	return pr, nil
}

// explicitItems reports whether the batch's objects are given (Items or
// ItemsFrom) rather than listed from the sources.
func (o Options) explicitItems() bool { return len(o.Items) > 0 || o.ItemsFrom != nil }

// explicit feeds the candidates of an Items (or ItemsFrom) batch: each
// object is looked up again (it may have changed or gone since).
func (in *Ingester) explicit(ctx context.Context, pr *prepared, seen map[string]bool, cands chan<- candidate) error {
	srcs := map[string]*source{}
	rows := map[*source]map[string]feedfile.Row{}
	feed := func(ref ItemRef) error {
		src := srcs[ref.Location]
		if src == nil && strings.HasPrefix(ref.Location, feedScheme) {
			s, err := in.openFeed(ctx, ref.Location, len(srcs))
			if err != nil {
				return err
			}
			src = s
			srcs[ref.Location] = src
		}
		if src == nil {
			st, err := in.Open(ctx, ref.Location)
			if err != nil {
				return fmt.Errorf("source %s: %w", ref.Location, err)
			}
			src = &source{index: len(srcs), url: st.Location(), store: st}
			srcs[ref.Location] = src
		}
		key := ref.Key
		if ref.Part != "" {
			key += "#part=" + ref.Part
		}
		id := jobs.ItemID(src.url, key)
		if seen[id] {
			return nil
		}
		seen[id] = true
		c := candidate{src: src, resultBase: ref.ResultBase, part: ref.Part}
		if src.feed != "" { // a feed row: looked up again in the feed
			if rows[src] == nil {
				rs, err := in.feedRows(ctx, src)
				if err != nil {
					return err
				}
				rows[src] = map[string]feedfile.Row{}
				for _, r := range rs {
					rows[src][r.Key] = r
				}
			}
			r, ok := rows[src][ref.Key]
			if !ok {
				r = feedfile.Row{Key: ref.Key, Err: "the row is no longer in the feed"}
			}
			c.info, c.row = storage.ObjectInfo{Key: ref.Key}, &r
			select {
			case cands <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		info, err := src.store.Stat(ctx, ref.Key)
		switch {
		case errors.Is(err, storage.ErrNotExist):
			c.info, c.gone = storage.ObjectInfo{Key: ref.Key}, true
		case err != nil:
			return fmt.Errorf("stat %s/%s: %w", src.url, ref.Key, err)
		default:
			c.info = info
		}
		select {
		case cands <- c:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, ref := range pr.o.Items {
		if err := feed(ref); err != nil {
			return err
		}
	}
	if pr.o.ItemsFrom != nil {
		return pr.o.ItemsFrom(ctx, feed)
	}
	return nil
}

// checkSidecar makes a product sidecar's location absolute and checks that
// it is there, so a typo fails the batch up front, not every item.
func (in *Ingester) checkSidecar(ctx context.Context, loc string) (string, error) {
	l, err := storage.ParseLocation(loc)
	if err != nil {
		return "", fmt.Errorf("products: %w", err)
	}
	full := l.String()
	dir, key := path.Split(full)
	if key == "" || (l.Scheme == "s3" && l.Prefix == "") {
		return "", fmt.Errorf("products %s: not a file", loc)
	}
	st, err := in.Open(ctx, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return "", fmt.Errorf("products %s: %w", loc, err)
	}
	if _, err := st.Stat(ctx, key); err != nil {
		return "", fmt.Errorf("products %s: %w", loc, err)
	}
	return full, nil
}

// currentResults lists the fingerprint markers under the output location:
// one listing, not one request per item.
func (in *Ingester) currentResults(ctx context.Context, out string) (map[string]bool, error) {
	st, err := in.Open(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", out, err)
	}
	m := map[string]bool{}
	for info, err := range st.List(ctx, fingerprint.Prefix, storage.ListOptions{Recursive: true}) {
		if errors.Is(err, storage.ErrNotExist) {
			break // no output yet
		}
		if err != nil {
			return nil, fmt.Errorf("list results in %s: %w", out, err)
		}
		m[info.Key] = true
	}
	return m, nil
}

// markers waits for the fingerprint markers under the output location.
func (pr *prepared) markers() (map[string]bool, error) {
	<-pr.currentDone
	return pr.current, pr.currentErr
}

// fingerprint is an item's fingerprint for a task under these options (an
// email's names its own prompt; a feed row's, its SKU and name).
func (pr *prepared) fingerprint(it Item, task string) string {
	v := pr.prompts[task]
	if task == jobs.TaskSummarize && it.Type == jobs.FileEML {
		v = pr.prompts[mailPrompts]
	}
	o := pr.o.Options
	if it.Ref.SKU != "" || it.Ref.Name != "" {
		o.Products += "\x00feed\x00" + it.Ref.SKU + "\x00" + it.Ref.Name
	}
	return fingerprint.Of(it.Ref.ETag, task, v, pr.o.Model, o)
}

// mailPrompts is prepared.prompts' key of an email message's prompt.
const mailPrompts = "summarize/eml"

// Scan lists and classifies what a batch with these options would hold,
// calling fn for every item (skipped ones included) from several goroutines
// at once, and returns how many items there are. It enqueues nothing and
// needs neither Queue nor Tracker: `llamapipe plan` uses it.
func (in *Ingester) Scan(ctx context.Context, o Options, fn func(Item) error) (int, error) {
	pr, err := in.prepare(ctx, o)
	if err != nil {
		return 0, err
	}
	return in.scan(ctx, pr, fn)
}

// listAhead is how far a listing runs ahead of classification.
const listAhead = 1 << 16

func (in *Ingester) scan(ctx context.Context, pr *prepared, fn func(Item) error) (int, error) {
	o := pr.o
	// Listed while the markers are: the listing runs ahead by up to
	// listAhead objects until they are in.
	cands := make(chan candidate, listAhead)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var extra atomic.Int64 // email attachments: items beside the objects
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pr.markers(); err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
				cancel()
				for range cands {
				}
				return
			}
			for c := range cands {
				items := in.classifyExpanded(ctx, pr, c)
				for _, x := range items {
					if err := fn(x); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
						break
					}
				}
				extra.Add(int64(len(items) - 1))
			}
		}()
	}
	seen := map[string]bool{}
	listErr := func() error {
		defer close(cands)
		if o.explicitItems() {
			return in.explicit(ctx, pr, seen, cands)
		}
		for _, src := range pr.sources {
			if src.feed != "" {
				if err := in.listFeed(ctx, src, seen, cands); err != nil {
					return err
				}
				continue
			}
			for info, err := range src.store.List(ctx, "", storage.ListOptions{Recursive: true}) {
				if err != nil {
					return fmt.Errorf("list %s: %w", src.url, err)
				}
				if info.IsPrefix || !src.selected(info.Key, o.Include, o.Exclude) {
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
	n := len(seen) + int(extra.Load())
	if firstErr != nil {
		return n, firstErr
	}
	return n, listErr
}

func (o Options) validate() error {
	if err := speccheck.Validate(o.Spec); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if o.NoDocuments != "" && o.Task == jobs.TaskSummarize {
		return fmt.Errorf("ingest: %s: %w", o.NoDocuments, ErrNoDocuments)
	}
	return nil
}
