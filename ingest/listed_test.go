package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/spill"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// keyCounter counts the commands (alone or pipelined) that name one key.
type keyCounter struct {
	key *atomic.Value
	n   atomic.Int64
}

func (k *keyCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (k *keyCounter) count(c redis.Cmder) {
	want, _ := k.key.Load().(string)
	if n := c.Name(); n == "hlen" || n == "hscan" || slices.ContainsFunc(c.Args(), func(a any) bool { s, _ := a.(string); return strings.HasSuffix(s, ":spill") }) {
		return // a spill's (jobs/spill): counted apart
	}
	if want != "" && slices.ContainsFunc(c.Args(), func(a any) bool { s, _ := a.(string); return s == want }) {
		k.n.Add(1)
	}
}
func (k *keyCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error { k.count(c); return next(ctx, c) }
}
func (k *keyCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		for _, c := range cs {
			k.count(c)
		}
		return next(ctx, cs)
	}
}

// An unchanged re-run of a bounded batch records its skipped items with
// one Redis write per listing chunk, and its manifest has every item once
// with the same entry an unbounded batch (one record per item) gives it;
// the counts are right and the records have a TTL once finalized.
func TestUnchangedRerunRecordsAChunkInOneWrite(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBIngest)
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	const n, page = 25, 10
	var img bytes.Buffer
	if err := jpeg.Encode(&img, image.NewRGBA(image.Rect(0, 0, 1, 1)), nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		write(t, src, fmt.Sprintf("sku%03d/front.jpg", i), img.Bytes())
	}
	// A finished run's fingerprint markers: every image is unchanged.
	prof := offline.New(offline.Options{}).Profile()
	pv, err := prompts.TaskVersion(jobs.TaskCaption)
	if err != nil {
		t.Fatal(err)
	}
	srcSt, _ := open(ctx, src)
	outSt, _ := open(ctx, out)
	for info, err := range srcSt.List(ctx, "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		fp := fingerprint.Of(info.ETag, jobs.TaskCaption, pv, prof.Model, jobs.Options{Language: "en"})
		if err := storage.PutVolatile(ctx, outSt, fingerprint.Key(info.Key, jobs.TaskCaption, fp), bytes.NewReader(nil), 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	kc := &keyCounter{key: &atomic.Value{}}
	rdb.AddHook(kc)
	client := asynq.NewClient(jobstest.ConnOpt(t, url))
	defer client.Close()
	tr := jobs.NewTracker(rdb, "")
	tr.SetPages(open)
	feeds := feed.New(rdb, "")
	in := &ingest.Ingester{Open: open, Queue: client, Tracker: tr, Feeds: feeds}
	spec := jobs.Spec{Sources: []string{src}, Out: out, Task: jobs.TaskCaption, Provider: prof.Provider, Model: prof.Model,
		Options: jobs.Options{Language: "en"}}
	bounded, unbounded := spec, spec
	bounded.MaxQueued = 5
	kc.key.Store(jobs.BatchItemsKey("", "rerun-bounded"))
	res, err := in.Run(ctx, ingest.Options{PageSize: page, BatchID: "rerun-bounded", Spec: bounded})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != n || res.Skipped != n || res.Enqueued != 0 {
		t.Fatalf("result %+v, want %d items, all skipped", res, n)
	}
	if got, want := kc.n.Load(), int64((n+page-1)/page); got != want {
		t.Errorf("%d commands on the items hash for %d unchanged items, want one per chunk: %d", got, n, want)
	}
	// Nothing was queued, so no worker records: ingest itself moved the
	// chunks it had passed out of Redis once two pages' worth were there.
	if pages, _ := rdb.HGet(ctx, jobs.BatchKey("", res.BatchID), spill.PagesField).Int(); pages < 1 {
		t.Errorf("no listing chunk was spilled (%d pages) after %d unchanged items in pages of %d", pages, n, page)
	}
	kc.key.Store("")
	ref, err := in.Run(ctx, ingest.Options{BatchID: "rerun-unbounded", Spec: unbounded})
	if err != nil || ref.Skipped != n {
		t.Fatalf("unbounded: %+v, %v", ref, err)
	}
	want, err := tr.Entries(ctx, ref.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tr.Entries(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got { // a bounded batch numbers its items in listing order (Entry.Seq)
		if got[i].Seq != int64(i+1) {
			t.Errorf("entry %d has seq %d, want %d", i, got[i].Seq, i+1)
		}
		got[i].Seq = 0
	}
	if len(want) != n || !reflect.DeepEqual(got, want) {
		t.Fatalf("bounded entries differ from one-record-per-item ones:\n got %+v\nwant %+v", got, want)
	}
	drain(t, url, tr, feeds, in, res.BatchID)
	c, err := tr.Counts(ctx, res.BatchID)
	if err != nil || c.Total != n || c.Skipped != n || c.Ended() != n {
		t.Fatalf("counts %+v, %v; want %d skipped of %d", c, err, n, n)
	}
	if cnt, err := tr.EntryCount(ctx, res.BatchID); err != nil || cnt != n {
		t.Fatalf("EntryCount %d, %v; want %d", cnt, err, n)
	}
	b, err := tr.Get(ctx, res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := outSt.Get(ctx, b.ManifestPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var lines []jobs.Entry
	for sc := bufio.NewScanner(rc); sc.Scan(); {
		var e jobs.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		e.Seq = 0 // checked above
		lines = append(lines, e)
	}
	slices.SortFunc(lines, func(a, b jobs.Entry) int { return strings.Compare(a.Source, b.Source) })
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("manifest:\n got %+v\nwant %+v", lines, want)
	}
	for _, key := range []string{jobs.BatchItemsKey("", res.BatchID), jobs.BatchSeriesKey("", res.BatchID)} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 {
			t.Errorf("%s: TTL %s after finalize", key, ttl)
		}
	}
}
