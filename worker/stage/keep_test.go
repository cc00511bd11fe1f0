package stage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// failingStore fails the Puts for which fail says so, with err.
type failingStore struct {
	storage.Store
	mu   sync.Mutex
	puts map[string]int
	fail func(key string, n int) bool
	err  error
}

func (f *failingStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	f.mu.Lock()
	if f.puts == nil {
		f.puts = map[string]int{}
	}
	f.puts[key]++
	n := f.puts[key]
	f.mu.Unlock()
	if f.fail(key, n) {
		return fmt.Errorf("put %s: %w", key, f.err)
	}
	return f.Store.Put(ctx, key, r, size, ct)
}

// memStash is a Stash in memory.
type memStash struct{ m map[string][]byte }

func (s *memStash) KeepAnswer(_ context.Context, batch, item, name string, b []byte) error {
	s.m[batch+"/"+item+"/"+name] = b
	return nil
}

func (s *memStash) KeptAnswer(_ context.Context, batch, item, name string) ([]byte, bool, error) {
	b, ok := s.m[batch+"/"+item+"/"+name]
	return b, ok, nil
}

func (s *memStash) DropKeptAnswers(_ context.Context, batch, item string) error {
	for k := range s.m {
		if strings.HasPrefix(k, batch+"/"+item+"/") {
			delete(s.m, k)
		}
	}
	return nil
}

func TestPutRetriesWhatMayHealAndNamesWhatCannot(t *testing.T) {
	ctx := context.Background()
	base, _ := newStore(t)
	flaky := &failingStore{Store: base, fail: func(_ string, n int) bool { return n <= 2 }, err: errors.New("503 slow down")}
	if err := stage.Put(ctx, flaky, "r.json", []byte("{}"), "application/json"); err != nil {
		t.Fatalf("two failures then success: %v", err)
	}
	if flaky.puts["r.json"] != 3 {
		t.Errorf("%d attempts, want 3", flaky.puts["r.json"])
	}
	flaky = &failingStore{Store: base, fail: func(string, int) bool { return true }, err: errors.New("disk hiccup")}
	err := stage.Put(ctx, flaky, "r.json", []byte("{}"), "application/json")
	var pe *stage.PermanentError
	if err == nil || errors.As(err, &pe) || flaky.puts["r.json"] != 3 {
		t.Errorf("unknown error: %v after %d attempts, want a retryable error after 3", err, flaky.puts["r.json"])
	}
	long := strings.Repeat("n", 246) + ".caption.json"
	err = stage.Put(ctx, base, long, []byte("{}"), "application/json")
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "cannot write result "+long+": name too long (259 chars; the limit is 255 bytes per path element)") {
		t.Errorf("name too long: %v", err)
	}
	denied := &failingStore{Store: base, fail: func(string, int) bool { return true },
		err: storage.Permanent("access denied (S3 AccessDenied) to s3://b/r.json: give the credentials write access", storage.ErrAccessDenied)}
	err = stage.Put(ctx, denied, "r.json", []byte("{}"), "application/json")
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "cannot write result r.json: access denied") || denied.puts["r.json"] != 3 {
		t.Errorf("denied: %v after %d attempts, want a PermanentError after 3", err, denied.puts["r.json"])
	}
}

func TestKeeperKeepsAnswersInTheWorkAreaOrRedis(t *testing.T) {
	ctx := context.Background()
	base, _ := newStore(t)
	stash := &memStash{m: map[string][]byte{}}
	k := stage.Keeper{Out: base, Stash: stash, Batch: "b", Item: "i"}
	if _, ok, err := k.Load(ctx, "caption"); ok || err != nil {
		t.Fatalf("nothing kept yet: %v, %v", ok, err)
	}
	kept := stage.Kept{Answer: stage.Answer{Doc: map[string]any{"caption": "cups"}, Usage: llm.Usage{InputTokens: 7}, Model: "m", Calls: 1},
		Outcome: stage.Outcome{InputTokens: 7, OutputTokens: 3, Cost: 0.5, Currency: "USD", Model: "m"}, Requests: 1}
	k.Keep(ctx, "caption", kept)
	if get(t, base, workarea.AnswerKey("b", "i", "caption")) == "" {
		t.Fatal("answer not in the work area")
	}
	got, ok, err := k.Load(ctx, "caption")
	if !ok || err != nil || got.Answer.Doc["caption"] != "cups" || got.Answer.Calls != 1 {
		t.Fatalf("loaded %+v, %v, %v", got, ok, err)
	}
	o := stage.Outcome{Pages: 2}
	got.Restore(&o)
	if o.InputTokens != 7 || o.OutputTokens != 3 || o.Cost != 0.5 || o.Currency != "USD" || o.Model != "m" || o.Pages != 2 {
		t.Errorf("restored %+v", o)
	}

	// A work area that cannot be written: the answer goes to Redis.
	broken := &failingStore{Store: base, fail: func(string, int) bool { return true }, err: errors.New("503")}
	kb := stage.Keeper{Out: broken, Stash: stash, Batch: "b", Item: "j"}
	kb.Keep(ctx, "summary", kept)
	if len(stash.m) != 1 {
		t.Fatalf("stash %v, want the answer", stash.m)
	}
	if got, ok, err := kb.Load(ctx, "summary"); !ok || err != nil || got.Outcome.Cost != 0.5 {
		t.Fatalf("loaded from Redis %+v, %v, %v", got, ok, err)
	}

	if err := k.Drop(ctx, "caption"); err != nil {
		t.Fatal(err)
	}
	if err := kb.Drop(ctx, "summary"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := k.Load(ctx, "caption"); ok {
		t.Error("dropped answer still there")
	}
	if len(stash.m) != 0 {
		t.Errorf("stash after Drop: %v", stash.m)
	}
	// The zero Keeper keeps nothing.
	var zero stage.Keeper
	zero.Keep(ctx, "x", kept)
	if _, ok, err := zero.Load(ctx, "x"); ok || err != nil {
		t.Errorf("zero Keeper: %v, %v", ok, err)
	}
}
