package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// env is one test's Redis, queue, tracker and storage.
type env struct {
	url     string
	rdb     redis.UniversalClient
	client  *asynq.Client
	tracker *jobs.Tracker
	cfg     backends.Config
	in      *ingest.Ingester
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url, rdb := jobstest.Redis(t, jobstest.DBWatch)
	e := &env{url: url, rdb: rdb, tracker: jobs.NewTracker(rdb, ""), cfg: backends.Config{S3: storagetest.S3Config(t)}}
	e.client = asynq.NewClient(jobstest.ConnOpt(t, url))
	t.Cleanup(func() { e.client.Close() })
	e.in = &ingest.Ingester{Open: e.open, Queue: e.client, Tracker: e.tracker}
	return e
}

func (e *env) open(ctx context.Context, loc string) (storage.Store, error) {
	return backends.Open(ctx, loc, e.cfg)
}

func (e *env) store(t *testing.T, loc string) storage.Store {
	t.Helper()
	st, err := e.open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) watcher(t *testing.T, o ingest.Options, cfg Config) *Watcher {
	t.Helper()
	feed, err := e.in.NewFeed(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Feed, cfg.Redis = feed, e.rdb
	if cfg.Name == "" {
		cfg.Name = "inbox"
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// countingModel counts model calls per source, to show that nothing is
// asked twice.
type countingModel struct {
	llm.Client
	mu    sync.Mutex
	calls int
}

func (c *countingModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.Client.Complete(ctx, req)
}

func (e *env) startWorker(t *testing.T, model llm.Client) {
	t.Helper()
	w, err := worker.New(worker.Config{Redis: jobstest.ConnOpt(t, e.url), Tracker: e.tracker, Open: e.open, Model: model,
		Concurrency: 4, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func put(t *testing.T, st storage.Store, key, body string) {
	t.Helper()
	if err := st.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), ""); err != nil {
		t.Fatal(err)
	}
}

func doc(n int) string {
	return fmt.Sprintf("Supply agreement number %d between Acme Ltd and Beta GmbH. The term is %d months. "+
		"Either party may terminate with thirty days notice. Payment is due within 45 days of invoice.", n, 12+n)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func manifest(t *testing.T, out storage.Store, key string) []jobs.Entry {
	t.Helper()
	var b bytes.Buffer
	rc, err := out.Get(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	var es []jobs.Entry
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e jobs.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("manifest line %q: %v", line, err)
		}
		es = append(es, e)
	}
	return es
}

// Objects uploaded while the watcher runs, and while it is stopped, are each
// processed exactly once; a changed object is processed again as a new
// version; the day's batch gets its manifest when it is sealed.
func TestPollingProcessesEachObjectOnceAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bucket := storagetest.NewS3Store(t, "").Bucket()
	srcURL := "s3://" + bucket + "/inbox"
	src := e.store(t, srcURL)
	out := t.TempDir()
	model := &countingModel{Client: offline.New(offline.Options{})}
	e.startWorker(t, model)

	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: out}}

	for i := range 3 {
		put(t, src, fmt.Sprintf("c%d.txt", i), doc(i))
	}
	put(t, src, "notes.bin", "\x00\x01\x02\xff\xfe binary")
	w := e.watcher(t, o, Config{Now: clock})
	st, err := w.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 4 {
		t.Fatalf("first poll added %d, want 4 (three documents and one skipped blob)", st.Added)
	}
	if st, err = w.Poll(ctx); err != nil || st.Added != 0 || st.Seen != 4 {
		t.Fatalf("second poll over an unchanged inbox: %+v, %v; want 4 seen, 0 added", st, err)
	}
	batch, count, err := w.Current(ctx)
	if err != nil || batch != "inbox-20261125" || count != 4 {
		t.Fatalf("current batch %q with %d items (%v), want inbox-20261125 with 4", batch, count, err)
	}

	// The watcher stops; objects land meanwhile; one object changes.
	put(t, src, "c3.txt", doc(3))
	put(t, src, "c4.txt", doc(4))
	put(t, src, "c0.txt", doc(100))
	// It stopped right after counting c5 in the batch, before queueing it.
	put(t, src, "c5.txt", doc(5))
	info, err := src.Stat(ctx, "c5.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.admit(ctx, jobs.ItemID(w.cfg.Feed.Sources()[0], "c5.txt"), info.ETag); err != nil {
		t.Fatal(err)
	}

	w2 := e.watcher(t, o, Config{Now: clock})
	st, err = w2.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 4 {
		t.Fatalf("poll after restart added %d, want 4 (c3, c4, the new c0 and the half-admitted c5)", st.Added)
	}
	if _, count, _ := w2.Current(ctx); count != 8 {
		t.Fatalf("the batch counts %d items, want 8 (c5 counted once)", count)
	}

	// Midnight: the next poll seals the day's batch, which then finalizes.
	now = now.Add(16 * time.Hour)
	put(t, src, "c6.txt", doc(6))
	st, err = w2.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sealed) != 1 || st.Sealed[0] != "inbox-20261125" || st.Added != 1 {
		t.Fatalf("poll after midnight: %+v, want inbox-20261125 sealed and c6 added", st)
	}
	if b, _, _ := w2.Current(ctx); b != "inbox-20261126" {
		t.Fatalf("c6 went to batch %q, want inbox-20261126", b)
	}
	waitFor(t, "the first day's batch to finalize", func() bool {
		c, err := e.tracker.Counts(ctx, "inbox-20261125")
		return err == nil && c.Finalized
	})
	outStore := e.store(t, out)
	// Each day's batch keeps its own manifest (they share the output).
	entries := manifest(t, outStore, "batches/inbox-20261125/manifest.jsonl")
	if len(entries) != 8 {
		t.Fatalf("manifest has %d entries, want 8", len(entries))
	}
	byKey := map[string][]jobs.Entry{}
	items := map[string]bool{}
	for _, en := range entries {
		byKey[en.Key] = append(byKey[en.Key], en)
		if items[en.Item] {
			t.Errorf("item %s is in the manifest twice", en.Item)
		}
		items[en.Item] = true
	}
	if n := len(byKey["c0.txt"]); n != 2 {
		t.Errorf("c0.txt has %d entries, want 2 (two versions)", n)
	}
	for _, k := range []string{"c1.txt", "c2.txt", "c3.txt", "c4.txt", "c5.txt", "notes.bin"} {
		if len(byKey[k]) != 1 {
			t.Errorf("%s has %d entries, want 1", k, len(byKey[k]))
		}
	}
	if en := byKey["notes.bin"]; len(en) == 1 && (en[0].Status != jobs.StatusSkipped || en[0].Error == "") {
		t.Errorf("notes.bin: %+v, want skipped with a reason", en[0])
	}
	model.mu.Lock()
	calls := model.calls
	model.mu.Unlock()
	if calls != 7 {
		t.Errorf("model called %d times for the first day, want 7 (one per document version)", calls)
	}
	if _, err := outStore.Stat(ctx, "c5.txt.summary.json"); err != nil {
		t.Errorf("c5's result: %v", err)
	}
}

func TestRollsEveryNItemsAndSkipsCurrentResults(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src := t.TempDir()
	out := t.TempDir()
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("d%d.txt", i)), []byte(doc(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: out, Tenant: "catalog"}}
	w := e.watcher(t, o, Config{Name: "roll", RollEvery: 2, Now: func() time.Time { return now }})
	st, err := w.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 5 || len(st.Sealed) != 2 {
		t.Fatalf("poll: %+v, want 5 added and 2 batches sealed", st)
	}
	for i, want := range []int{2, 2} {
		id := fmt.Sprintf("roll-20261125-%03d", i+1)
		c, err := e.tracker.Counts(ctx, id)
		if err != nil || !c.Sealed || c.Total != want {
			t.Errorf("batch %s: %+v (%v), want sealed with %d", id, c, err, want)
		}
		b, err := e.tracker.Get(ctx, id)
		if err != nil || b.Watch != "roll" || b.Tenant != "catalog" {
			t.Errorf("batch %s: watch %q, tenant %q (%v), want roll and catalog", id, b.Watch, b.Tenant, err)
		}
	}
	if b, n, _ := w.Current(ctx); b != "roll-20261125-003" || n != 1 {
		t.Errorf("open batch %s with %d items, want roll-20261125-003 with 1", b, n)
	}
	// Settling: a file written just now waits for the next poll.
	w.cfg.Settle = time.Hour
	now = time.Now()
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte(doc(9)), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := w.Poll(ctx); err != nil || st.Settling != 1 || st.Added != 0 {
		t.Errorf("poll with a fresh file: %+v, %v; want it settling", st, err)
	}

	// A watch started over an inbox whose results are current (a marker
	// for the same fingerprint) leaves those objects alone.
	feed, err := e.in.NewFeed(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	info, err := feed.Stat(ctx, 0, "d0.txt")
	if err != nil {
		t.Fatal(err)
	}
	it := feed.Classify(ctx, 0, info)
	marker := fingerprint.Key(it.ResultBase, it.Task, it.Fingerprint)
	put(t, e.store(t, out), marker, "")
	w3 := e.watcher(t, o, Config{Name: "fresh", Now: func() time.Time { return now }})
	st, err = w3.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 1 || st.Added != 5 {
		t.Errorf("fresh watch: %+v, want d0 current and the other five added", st)
	}
}

// MinIO sends bucket notifications to a Redis list (.ci/with-services
// configures the target); the watcher consumes them, each object once,
// including the events that arrived while it was stopped.
func TestMinIOEventsThroughRedis(t *testing.T) {
	key, arn := os.Getenv("LLAMAPIPE_TEST_MINIO_EVENTS_KEY"), os.Getenv("LLAMAPIPE_TEST_MINIO_EVENTS_ARN")
	if key == "" || arn == "" {
		t.Fatal("no MinIO event target (LLAMAPIPE_TEST_MINIO_EVENTS_KEY): run the tests with `make test`")
	}
	e := newEnv(t)
	ctx := context.Background()
	bst := storagetest.NewS3Store(t, "")
	bucket := bst.Bucket()
	src := e.store(t, "s3://"+bucket)
	events := redis.NewClient(&redis.Options{Addr: os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")})
	defer events.Close()
	events.Del(ctx, key, key+":processing")

	_, err := bst.Client().PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(arn), Events: []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String("inbox/")}}}},
		}}},
	})
	if err != nil {
		t.Fatalf("configure bucket notifications: %v", err)
	}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{"s3://" + bucket + "/inbox"}, Out: "s3://" + bucket + "/results", Include: []string{"*.txt"}}}
	// Listing runs once at start, then not for an hour: what follows comes
	// from events alone.
	run := func() (*Watcher, context.CancelFunc, chan error) {
		w := e.watcher(t, o, Config{Name: "events", Interval: time.Hour})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(rctx, &RedisList{Client: events, Key: key}) }()
		return w, cancel, done
	}
	w, cancel, done := run()
	waitFor(t, "the watcher to hold its lease", func() bool {
		n, _ := e.rdb.Exists(ctx, w.LeaseKey()).Result()
		return n == 1
	})
	put(t, src, "inbox/a b.txt", doc(1)) // a key S3 sends URL-encoded
	put(t, src, "inbox/b.txt", doc(2))
	put(t, src, "inbox/skip.md", doc(3)) // not included
	put(t, src, "elsewhere/c.txt", doc(4))
	counted := func(n int) func() bool {
		return func() bool { _, c, err := w.Current(ctx); return err == nil && c == n }
	}
	waitFor(t, "two events to be admitted", counted(2))
	put(t, src, "inbox/b.txt", doc(2)) // the same content again: same ETag
	waitFor(t, "the event list to drain", func() bool {
		n1, _ := events.LLen(ctx, key).Result()
		n2, _ := events.LLen(ctx, key+":processing").Result()
		return n1 == 0 && n2 == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopped: events queue up in Redis.
	put(t, src, "inbox/c.txt", doc(5))
	put(t, src, "inbox/d.txt", doc(6))
	waitFor(t, "MinIO to publish two events", func() bool {
		n1, _ := events.LLen(ctx, key).Result()
		n2, _ := events.LLen(ctx, key+":processing").Result()
		return n1+n2 >= 2
	})
	w, cancel, done = run()
	waitFor(t, "the queued events to be admitted", counted(4))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(jobstest.ConnOpt(t, e.url))
	defer insp.Close()
	tasks, err := insp.ListPendingTasks(jobs.QueueDefault, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, task := range tasks {
		p, err := itemtask.Decode(task.Payload, func(id string) (jobs.Batch, error) { return e.tracker.Get(context.Background(), id) })
		if err != nil {
			t.Fatal(err)
		}
		keys[p.Source.Key]++
	}
	want := map[string]int{"a b.txt": 1, "b.txt": 1, "c.txt": 1, "d.txt": 1}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("queued items %v, want %v", keys, want)
	}
}

func TestParseEvents(t *testing.T) {
	minio := `[{"Event":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"in%2Fa+b.pdf","size":12,"eTag":"abc"}}}],"EventTime":"2026-11-25T10:00:00Z"}]`
	aws := `{"Records":[{"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"x.jpg","size":3,"eTag":"\"e1\""}}},
	                    {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"y.jpg"}}}]}`
	test := `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}`
	evs, err := ParseEvents([]byte(minio))
	if err != nil || len(evs) != 1 || evs[0].Key != "in/a b.pdf" || evs[0].ETag != "abc" || evs[0].Size != 12 || !evs[0].Created() {
		t.Errorf("minio: %+v, %v", evs, err)
	}
	evs, err = ParseEvents([]byte(aws))
	if err != nil || len(evs) != 2 || evs[0].ETag != "e1" || !evs[0].Created() || evs[1].Created() {
		t.Errorf("aws: %+v, %v", evs, err)
	}
	if evs, err := ParseEvents([]byte(test)); err != nil || len(evs) != 0 {
		t.Errorf("test event: %+v, %v", evs, err)
	}
	if _, err := ParseEvents([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestDefaultNameIsStableAndValid(t *testing.T) {
	a := DefaultName([]string{"s3://cat/inbox/"}, "s3://cat/out")
	if a != DefaultName([]string{"s3://cat/inbox/"}, "s3://cat/out") || !ValidName(a) || !strings.HasPrefix(a, "inbox-") {
		t.Errorf("name %q", a)
	}
	if a == DefaultName([]string{"s3://cat/inbox/"}, "s3://cat/other") {
		t.Error("two watches into different outputs share a name")
	}
	if ValidName("../x") || ValidName("") {
		t.Error("bad names accepted")
	}
}
