package caption_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/caption"
)

// An image alpha holds is captioned again for beta: beta's caption never
// names alpha's object, and a batch of alpha's own still reuses it.
func TestCaptionCacheIsScopedByTenant(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t, "images", "photos"), "ColorfulCups_by_Dmitri_Popov.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := openDir(t, outDir)
	m := &captionModel{}
	cache := newMemCache()
	cache.tenants = map[string]string{"a1": "alpha", "a2": "alpha", "b1": "beta"}
	s, err := caption.New(caption.Config{Cache: cache, Slots: 1,
		Open: func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }})
	if err != nil {
		t.Fatal(err)
	}
	item := func(batch, src, key string) caption.Item {
		p := jobs.ItemPayload{Batch: batch, Item: jobs.ItemID(src, key), Source: jobs.Ref{Location: src, Key: key},
			Type: "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: outDir, ResultBase: batch + "/" + key}
		return caption.Item{Payload: p, Out: out, Model: m, Log: slog.New(slog.DiscardHandler),
			ReadSource: func(context.Context) ([]byte, error) { return data, nil }}
	}
	ctx := context.Background()
	read := func(key string) string {
		rc, err := out.Get(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	if _, err := s.Caption(ctx, item("a1", "/data/alpha/img/unreleased", "phone.jpg"), data); err != nil {
		t.Fatal(err)
	}
	ob, err := s.Caption(ctx, item("b1", "/data/beta/img", "phone.jpg"), data)
	if err != nil {
		t.Fatal(err)
	}
	if m.calls != 2 || ob.InputTokens == 0 {
		t.Fatalf("beta's identical image: %d model calls, outcome %+v; want its own caption", m.calls, ob)
	}
	if got := read(ob.Results[0]); strings.Contains(got, "alpha") || strings.Contains(got, "duplicate_of") {
		t.Errorf("beta's caption names alpha's object:\n%s", got)
	}
	oa, err := s.Caption(ctx, item("a2", "/data/alpha/img/copy", "phone.jpg"), data)
	if err != nil {
		t.Fatal(err)
	}
	if m.calls != 2 || !strings.Contains(read(oa.Results[0]), `"duplicate_of": "/data/alpha/img/unreleased/phone.jpg"`) {
		t.Errorf("alpha's second batch: %d model calls; want its first caption reused:\n%s", m.calls, read(oa.Results[0]))
	}
}
