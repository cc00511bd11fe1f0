package localstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
)

// ledgerSyncer syncs nothing and notes what a power loss could not take
// back: the data of the files it was asked to sync, and the names in the
// folders it was asked to sync (what they held at that moment).
type ledgerSyncer struct {
	dir string

	mu           sync.Mutex
	calls        int
	synced       map[string]bool // temporary files whose data was synced
	durableNames map[string]bool // keys present in a folder when it was synced
	filesPerCall []int
}

func (l *ledgerSyncer) files(fs []*os.File) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.filesPerCall = append(l.filesPerCall, len(fs))
	for _, f := range fs {
		l.synced[filepath.Base(f.Name())] = true
	}
	return make([]error, len(fs))
}

func (l *ledgerSyncer) dirs(_ *os.Root, dirs []string) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(l.dir, filepath.FromSlash(d)))
		for _, e := range ents {
			l.durableNames[filepath.ToSlash(filepath.Join(d, e.Name()))] = true
		}
	}
	return make([]error, len(dirs))
}

func newLedgerStore(t *testing.T) (*Store, *ledgerSyncer) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l := &ledgerSyncer{dir: dir, synced: map[string]bool{}, durableNames: map[string]bool{}}
	s.commits.sync = l
	return s, l
}

func read(t *testing.T, s *Store, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Location(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

// An item's results written with one PutGroup are one commit: their data
// synced in one call, their folders in one more, and every name durable
// when PutGroup returns. A volatile write asks for no sync at all (a power
// loss may take it), and is still whole at its key.
func TestPutGroupIsDurableWhenItReturns(t *testing.T) {
	s, l := newLedgerStore(t)
	ctx := t.Context()
	if err := s.PutVolatile(ctx, ".work/b1/item/answer.json", strings.NewReader(`{"a":1}`), 7, ""); err != nil {
		t.Fatal(err)
	}
	if l.calls != 0 {
		t.Errorf("PutVolatile asked for %d syncs, want none", l.calls)
	}
	if got := read(t, s, ".work/b1/item/answer.json"); got != `{"a":1}` {
		t.Errorf("volatile object = %q", got)
	}
	objs := []storage.Object{
		{Key: "docs/a.summary.json", Data: []byte(`{"x":1}`)},
		{Key: "docs/a.summary.md", Data: []byte("# a\n")},
		{Key: "markers/a.fp", Data: nil},
	}
	if err := s.PutGroup(ctx, objs); err != nil {
		t.Fatal(err)
	}
	if l.calls != 2 || len(l.filesPerCall) != 1 || l.filesPerCall[0] != len(objs) {
		t.Errorf("%d sync calls (files per call %v), want one files call with all %d and one folders call", l.calls, l.filesPerCall, len(objs))
	}
	for _, o := range objs {
		if !l.durableNames[o.Key] {
			t.Errorf("%s: not in its folder when the folder was synced", o.Key)
		}
		if got := read(t, s, o.Key); got != string(o.Data) {
			t.Errorf("%s = %q, want %q", o.Key, got, o.Data)
		}
	}
	if len(l.synced) != len(objs) {
		t.Errorf("%d files' data synced, want %d", len(l.synced), len(objs))
	}
	if l.durableNames[".work/b1/item/answer.json"] {
		t.Error("the volatile object's folder was synced")
	}
}

// When one object of a group cannot be written, none is committed and no
// temporary file is left.
func TestPutGroupCommitsNothingWhenOneFails(t *testing.T) {
	s, l := newLedgerStore(t)
	err := s.PutGroup(t.Context(), []storage.Object{
		{Key: "r/a.json", Data: []byte("a")},
		{Key: "r/../../escape", Data: []byte("b")},
		{Key: "r/c.json", Data: []byte("c")},
	})
	if !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("PutGroup = %v, want ErrInvalidKey", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Location(), "r"))
	if len(ents) != 0 || l.calls != 0 {
		t.Errorf("left %v after %d sync calls; want nothing written, nothing synced", ents, l.calls)
	}
}

// A failed sync fails the group with the keys it could not make durable.
func TestPutGroupReportsFailedSyncs(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.commits.sync = failingSyncer{}
	err = s.PutGroup(t.Context(), []storage.Object{{Key: "r/a.json", Data: []byte("a")}, {Key: "r/b.md", Data: []byte("b")}})
	if err == nil || !strings.Contains(err.Error(), `"r/a.json"`) || !strings.Contains(err.Error(), `"r/b.md"`) {
		t.Fatalf("PutGroup = %v, want both keys' sync errors", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Location(), "r")); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// storage.PutGroup and storage.PutVolatile fall back to Put on a store
// without them.
func TestPutGroupFallsBackToPut(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plain := struct{ storage.Store }{s} // hides PutGroup and PutVolatile
	if err := storage.PutGroup(t.Context(), plain, []storage.Object{{Key: "a", Data: []byte("1")}, {Key: "b/c", Data: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if err := storage.PutVolatile(t.Context(), plain, "v", strings.NewReader("3"), 1, ""); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"a": "1", "b/c": "2", "v": "3"} {
		if got := read(t, s, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}
