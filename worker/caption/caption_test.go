package caption_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// memCache is an in-memory caption cache with claims.
type memCache struct {
	mu     sync.Mutex
	docs   map[string][]byte
	claims map[string]string
	// tenants are the batches' tenants (none: "").
	tenants map[string]string
}

func newMemCache() *memCache {
	return &memCache{docs: map[string][]byte{}, claims: map[string]string{}}
}

func (c *memCache) ContentScope(_ context.Context, batch string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenants[batch], nil
}

func (c *memCache) CachedResult(_ context.Context, tenant, key string) ([]byte, bool, error) {
	key = tenant + "\x00" + key
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.docs[key]
	return b, ok, nil
}

func (c *memCache) StoreResult(_ context.Context, tenant, key string, result []byte, _ time.Duration) error {
	key = tenant + "\x00" + key
	c.mu.Lock()
	defer c.mu.Unlock()
	c.docs[key] = result
	delete(c.claims, key)
	return nil
}

func (c *memCache) ClaimResult(_ context.Context, tenant, key, owner string, _ time.Duration) (bool, error) {
	key = tenant + "\x00" + key
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.claims[key]; ok && o != owner {
		return false, nil
	}
	c.claims[key] = owner
	return true, nil
}

func (c *memCache) ReleaseClaim(_ context.Context, tenant, key, owner string) error {
	key = tenant + "\x00" + key
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claims[key] == owner {
		delete(c.claims, key)
	}
	return nil
}

var _ caption.Cache = (*jobs.Tracker)(nil)

// captionModel answers the caption schema and keeps the prompts it saw.
type captionModel struct {
	mu      sync.Mutex
	calls   int
	prompts []string
}

func (m *captionModel) Profile() llm.Profile {
	return llm.Profile{Provider: "openai", Model: "vision", ContextTokens: 32768, MaxImages: 4}
}

func (m *captionModel) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	m.mu.Lock()
	m.calls++
	m.prompts = append(m.prompts, req.Parts[0].Text)
	m.mu.Unlock()
	if req.Parts[1].Image == nil {
		return llm.Response{}, errors.New("no image in the request")
	}
	b, _ := json.Marshal(map[string]any{"alt_text": "Two cups.", "caption": "Two colourful cups on a table.",
		"title": "Cups", "category": "cup", "colors": []string{"red"}, "material": "", "attributes": map[string]any{},
		"tags": []string{"cups"}, "visible_text": "", "quality": map[string]any{"blurry": false,
			"background_not_white": true, "watermark": false, "multiple_products": true, "contains_person": false}})
	return llm.Response{Text: string(b), Model: "vision", Usage: llm.Usage{InputTokens: 1000, OutputTokens: 50}}, nil
}

func openDir(t *testing.T, dir string) storage.Store {
	t.Helper()
	st, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestIdenticalImageIsCaptionedOnceAndProductsReachThePrompt(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t, "images", "photos"), "ColorfulCups_by_Dmitri_Popov.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	side := t.TempDir()
	if err := os.WriteFile(filepath.Join(side, "products.csv"), []byte("image,sku,name,brand\ncups.jpg,SKU-1,Cup set,Acme\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := openDir(t, outDir)
	m := &captionModel{}
	s, err := caption.New(caption.Config{Cache: newMemCache(), Slots: 1,
		Open: func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }})
	if err != nil {
		t.Fatal(err)
	}
	item := func(key string, products string) caption.Item {
		p := jobs.ItemPayload{Batch: "b1", Item: jobs.ItemID("src", key), Source: jobs.Ref{Location: "src", Key: key},
			Type: "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: outDir, ResultBase: key,
			Options: jobs.Options{Products: products}}
		return caption.Item{Payload: p, Out: out, Model: m, Log: slog.New(slog.DiscardHandler),
			ReadSource: func(context.Context) ([]byte, error) { return data, nil }}
	}
	ctx := context.Background()
	o1, err := s.Caption(ctx, item("a.jpg", ""), data)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := s.Caption(ctx, item("b.jpg", ""), data)
	if err != nil {
		t.Fatal(err)
	}
	if m.calls != 1 || o1.InputTokens != 1000 || o2.InputTokens != 0 || len(o2.Results) != 1 {
		t.Fatalf("%d calls; outcomes %+v and %+v: want the second reused", m.calls, o1, o2)
	}
	rc, err := out.Get(ctx, o2.Results[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), `"duplicate_of": "src/a.jpg"`) {
		t.Errorf("reused caption does not name its source:\n%s", b)
	}
	if _, err := s.Caption(ctx, item("cups.jpg", filepath.Join(side, "products.csv")), data); err != nil {
		t.Fatal(err)
	}
	if m.calls != 2 || !strings.Contains(m.prompts[1], "SKU-1") {
		t.Errorf("the product did not reach a new request (%d calls): %q", m.calls, m.prompts)
	}
}

func TestUndecodableImageIsSkippedWithAReason(t *testing.T) {
	out := openDir(t, t.TempDir())
	s, err := caption.New(caption.Config{Cache: newMemCache(),
		Open: func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("II*\x00 this is not a TIFF we can read")
	it := caption.Item{Payload: jobs.ItemPayload{Batch: "b", Item: "i", Source: jobs.Ref{Location: "src", Key: "x.tif"}, ResultBase: "x.tif", Task: jobs.TaskCaption},
		Out: out, Model: &captionModel{}, Log: slog.New(slog.DiscardHandler)}
	o, err := s.Caption(context.Background(), it, data)
	if err != nil {
		if pe := (*stage.PermanentError)(nil); !errors.As(err, &pe) {
			t.Fatalf("undecodable image: %v, want skipped or a PermanentError", err)
		}
		return // corrupt rather than unsupported: a permanent failure
	}
	if o.Skipped == "" {
		t.Errorf("undecodable image neither skipped nor failed: %+v", o)
	}
}

func TestImageOptionsApplyTheProfilesLimits(t *testing.T) {
	for _, c := range []struct {
		in   imageprep.Options
		prof llm.Profile
		want imageprep.Options
	}{
		{imageprep.Options{}, llm.Profile{}, imageprep.Options{MaxSide: 1344}},
		{imageprep.Options{MaxBytes: 5 << 20}, llm.Profile{MaxImageBytes: 1 << 20}, imageprep.Options{MaxBytes: 1 << 20, MaxSide: 1344}},
		{imageprep.Options{MaxBytes: 1 << 20}, llm.Profile{MaxImageBytes: 5 << 20}, imageprep.Options{MaxBytes: 1 << 20, MaxSide: 1344}},
		{imageprep.Options{MaxSide: 2000}, llm.Profile{MaxImagePixels: 1000 * 1000}, imageprep.Options{MaxSide: 1000}},
	} {
		if got := caption.ImageOptions(c.in, c.prof); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("ImageOptions(%+v, %+v) = %+v, want %+v", c.in, c.prof, got, c.want)
		}
	}
}
