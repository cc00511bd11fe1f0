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

// memStash is a Stash in memory; with refuse set, it refuses to keep.
type memStash struct {
	m      map[string][]byte
	refuse bool
}

func (s *memStash) KeepAnswer(_ context.Context, batch, item, name string, b []byte) error {
	if s.refuse {
		return errors.New("OOM command not allowed when used memory > 'maxmemory'")
	}
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

// countingStore counts the Puts and Deletes of kept answers' files.
type countingStore struct {
	storage.Store
	puts, deletes int
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if strings.Contains(key, "/answer-") {
		c.puts++
	}
	return c.Store.Put(ctx, key, r, size, ct)
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "/answer-") {
		c.deletes++
	}
	return c.Store.Delete(ctx, key)
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

func TestKeeperKeepsAnswersInRedisOrTheWorkArea(t *testing.T) {
	ctx := context.Background()
	base, _ := newStore(t)
	out := &countingStore{Store: base}
	stash := &memStash{m: map[string][]byte{}}
	k := stage.Keeper{Out: out, Stash: stash, Batch: "b", Item: "i"}
	if _, ok, err := k.Load(ctx, "caption"); ok || err != nil {
		t.Fatalf("nothing kept yet: %v, %v", ok, err)
	}
	kept := stage.Kept{Answer: stage.Answer{Doc: map[string]any{"caption": "cups"}, Usage: llm.Usage{InputTokens: 7}, Model: "m", Calls: 1},
		Outcome: stage.Outcome{InputTokens: 7, OutputTokens: 3, Cost: 0.5, Currency: "USD", Model: "m"}, Requests: 1}

	// Redis first: no file.
	if k.Keep(ctx, "caption", kept) {
		t.Error("Keep reports the work area, want Redis")
	}
	if len(stash.m) != 1 || out.puts != 0 {
		t.Fatalf("stash %d answers, %d files written: want the answer in Redis and no file", len(stash.m), out.puts)
	}
	got, ok, err := k.Load(ctx, "caption")
	if !ok || err != nil || got.Answer.Doc["caption"] != "cups" || got.Answer.Calls != 1 || got.InWorkArea {
		t.Fatalf("loaded %+v, %v, %v", got, ok, err)
	}
	o := stage.Outcome{Pages: 2}
	got.Restore(&o)
	if o.InputTokens != 7 || o.OutputTokens != 3 || o.Cost != 0.5 || o.Currency != "USD" || o.Model != "m" || o.Pages != 2 {
		t.Errorf("restored %+v", o)
	}
	if err := k.Drop(ctx); err != nil { // no names: no file may be there
		t.Fatal(err)
	}
	if len(stash.m) != 0 || out.deletes != 0 {
		t.Errorf("after Drop: stash %v, %d file deletes; want it empty and no delete", stash.m, out.deletes)
	}

	// Redis refuses: the answer goes to the work area, and Load finds it
	// there.
	stash.refuse = true
	kw := stage.Keeper{Out: out, Stash: stash, Batch: "b", Item: "j"}
	if !kw.Keep(ctx, "summary", kept) {
		t.Error("Keep does not report the work area")
	}
	if get(t, base, workarea.AnswerKey("b", "j", "summary")) == "" {
		t.Fatal("answer not in the work area")
	}
	if got, ok, err := kw.Load(ctx, "summary"); !ok || err != nil || got.Outcome.Cost != 0.5 || !got.InWorkArea {
		t.Fatalf("loaded from the work area %+v, %v, %v", got, ok, err)
	}
	if err := kw.Drop(ctx, "summary"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := kw.Load(ctx, "summary"); ok || out.deletes != 1 {
		t.Errorf("dropped answer still there (%v) or %d deletes, want 1", ok, out.deletes)
	}
	stash.refuse = false

	// An answer over 256 KB goes to the work area too.
	big := kept
	big.Answer.Doc = map[string]any{"summary": strings.Repeat("x", 300<<10)}
	if !kw.Keep(ctx, "reduce", big) || len(stash.m) != 0 {
		t.Fatalf("a 300 KB answer: stash %d answers, want it in the work area", len(stash.m))
	}
	if got, ok, err := kw.Load(ctx, "reduce"); !ok || err != nil || len(got.Answer.Doc["summary"].(string)) != 300<<10 {
		t.Fatalf("large answer not loaded: %v, %v", ok, err)
	}

	// Neither Redis nor the work area: nothing is kept, and the next
	// attempt asks again.
	stash.refuse = true
	broken := &failingStore{Store: base, fail: func(string, int) bool { return true }, err: errors.New("503")}
	kb := stage.Keeper{Out: broken, Stash: stash, Batch: "b", Item: "k"}
	kb.Keep(ctx, "caption", kept)
	if _, ok, err := kb.Load(ctx, "caption"); ok || err != nil {
		t.Errorf("kept nowhere, but loaded: %v, %v", ok, err)
	}

	// The zero Keeper keeps nothing.
	var zero stage.Keeper
	zero.Keep(ctx, "x", kept)
	if _, ok, err := zero.Load(ctx, "x"); ok || err != nil {
		t.Errorf("zero Keeper: %v, %v", ok, err)
	}
}

// A Redis that cannot be read, with no answer in the work area: Load is an
// error (the task is retried), not "nothing kept" (a new paid call).
func TestKeeperLoadWithRedisDownIsAnError(t *testing.T) {
	base, _ := newStore(t)
	stored := false
	k := stage.Keeper{Out: base, Stash: downStash{&memStash{m: map[string][]byte{}}}, Batch: "b", Item: "i",
		Stored: func(context.Context, string) (stage.Kept, bool, error) {
			stored = true
			return stage.Kept{}, false, nil
		}}
	if _, ok, err := k.Load(context.Background(), "caption"); ok || err == nil || stored {
		t.Errorf("Load: %v, %v (Stored asked: %v); want an error", ok, err, stored)
	}
}

type downStash struct{ *memStash }

func (downStash) KeptAnswer(context.Context, string, string, string) ([]byte, bool, error) {
	return nil, false, errors.New("dial tcp: connection refused")
}
