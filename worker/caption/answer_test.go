package caption_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// failCaption fails the first n writes of the caption result.
type failCaption struct {
	storage.Store
	n    int64
	seen atomic.Int64
}

func (f *failCaption) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if strings.HasSuffix(key, jobs.SuffixCaptionJSON) && f.seen.Add(1) <= f.n {
		return errors.New("injected write failure")
	}
	return f.Store.Put(ctx, key, r, size, ct)
}

// A caption whose write fails is written by the next attempt from the kept
// answer — not from the cache, not by a new call — and the outcome carries
// the call's tokens each time; once the item is recorded the kept answer
// is dropped.
func TestCaptionWriteFailureKeepsTheAnswer(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t, "images", "photos"), "ColorfulCups_by_Dmitri_Popov.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	base := openDir(t, outDir)
	out := &failCaption{Store: base, n: 3}
	m := &captionModel{}
	cache := newMemCache()
	s, err := caption.New(caption.Config{Cache: cache, Slots: 1,
		Open: func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }})
	if err != nil {
		t.Fatal(err)
	}
	p := jobs.ItemPayload{Batch: "b1", Item: jobs.ItemID("src", "a.jpg"), Source: jobs.Ref{Location: "src", Key: "a.jpg"},
		Type: "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: outDir, ResultBase: "a.jpg"}
	it := caption.Item{Payload: p, Out: out, Model: m, Log: slog.New(slog.DiscardHandler),
		ReadSource: func(context.Context) ([]byte, error) { return data, nil },
		Keep:       stage.Keeper{Out: out, Batch: p.Batch, Item: p.Item}}
	ctx := context.Background()
	o, err := s.Caption(ctx, it, data)
	if err == nil || o.InputTokens != 1000 {
		t.Fatalf("first attempt: %v, %+v: want the write's error and the call's tokens", err, o)
	}
	o, err = s.Caption(ctx, it, data)
	if err != nil || len(o.Results) != 1 || o.InputTokens != 1000 || m.calls != 1 {
		t.Fatalf("second attempt: %v, %+v, %d calls: want the result from the kept answer", err, o, m.calls)
	}
	// The item was not recorded (say Redis failed): a third attempt finds
	// the caption cached, yet uses its own kept answer (charged, and not a
	// duplicate of itself).
	o, err = s.Caption(ctx, it, data)
	if err != nil || o.InputTokens != 1000 || m.calls != 1 {
		t.Fatalf("third attempt: %v, %+v, %d calls", err, o, m.calls)
	}
	rc, err := base.Get(ctx, o.Results[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if strings.Contains(string(b), "duplicate_of") {
		t.Errorf("the item's own caption names a duplicate:\n%s", b)
	}
	if err := it.Keep.Drop(ctx, o.Kept...); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Stat(ctx, workarea.AnswerKey(p.Batch, p.Item, "caption")); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("kept answer after Drop: %v", err)
	}
}
