package localstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/storage"
)

// countingSyncer syncs for real (syncfs or fsync) and counts the calls. The
// first files call waits until hold Puts are queued behind it.
type countingSyncer struct {
	inner syncer
	s     *Store
	hold  int

	mu            sync.Mutex
	nFiles, nDirs int
}

func (c *countingSyncer) files(fs []*os.File) []error {
	c.mu.Lock()
	c.nFiles++
	first := c.nFiles == 1
	c.mu.Unlock()
	for first && c.queued() < c.hold {
		time.Sleep(time.Millisecond) // the other Puts are still writing
	}
	return c.inner.files(fs)
}

func (c *countingSyncer) dirs(root *os.Root, dirs []string) []error {
	c.mu.Lock()
	c.nDirs++
	c.mu.Unlock()
	return c.inner.dirs(root, dirs)
}

func (c *countingSyncer) queued() int {
	c.s.commits.mu.Lock()
	defer c.s.commits.mu.Unlock()
	return len(c.s.commits.queue)
}

// Puts that arrive while commits run share the next one: with one commit
// at a time, 20 concurrent Puts cost two commits (the first Put's, then one
// for the 19 queued behind it), not 20.
func TestConcurrentPutsShareCommits(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 20
	cs := &countingSyncer{inner: defaultSyncer, s: s, hold: n - 1}
	s.commits.sync, s.commits.max = cs, 1
	// The first Put alone, so that its commit is the one the others queue
	// behind.
	first := make(chan error, 1)
	go func() { first <- s.Put(t.Context(), "r/0.json", strings.NewReader("0"), 1, "") }()
	for {
		cs.mu.Lock()
		started := cs.nFiles > 0
		cs.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Go(func() {
			errs[i] = s.Put(t.Context(), fmt.Sprintf("r/%d.json", i), strings.NewReader(strconv.Itoa(i)), -1, "")
		})
	}
	wg.Wait()
	errs[0] = <-first
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		b, err := os.ReadFile(filepath.Join(s.Location(), "r", strconv.Itoa(i)+".json"))
		if err != nil || string(b) != strconv.Itoa(i) {
			t.Fatalf("result %d = %q, %v", i, b, err)
		}
	}
	if cs.nFiles != 2 || cs.nDirs != 2 {
		t.Errorf("%d Puts made %d file syncs and %d folder syncs, want 2 each", n, cs.nFiles, cs.nDirs)
	}
}

// orderSyncer logs what it is asked to sync and what the folder holds at
// that moment, and holds every call until released.
type orderSyncer struct {
	key     string // the Put's file, below dir
	dir     string
	release chan struct{}

	mu  sync.Mutex
	log []string
}

func (o *orderSyncer) add(ev string) {
	o.mu.Lock()
	o.log = append(o.log, ev)
	o.mu.Unlock()
}

func (o *orderSyncer) events() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.log, " ")
}

func (o *orderSyncer) files(fs []*os.File) []error {
	_, err := os.Stat(filepath.Join(o.dir, o.key))
	o.add(fmt.Sprintf("files(%d,key-exists=%v)", len(fs), err == nil))
	<-o.release
	o.add("files-synced")
	return make([]error, len(fs))
}

func (o *orderSyncer) dirs(_ *os.Root, dirs []string) []error {
	_, err := os.Stat(filepath.Join(o.dir, o.key))
	o.add(fmt.Sprintf("dirs(%s,key-exists=%v)", strings.Join(dirs, ","), err == nil))
	<-o.release
	o.add("dirs-synced")
	return make([]error, len(dirs))
}

// A Put returns only after a sync of its file's data (before the rename, so
// that a file at a key is always complete) and a sync of its folder (after
// the rename, so that the new name survives).
func TestPutReturnsAfterItsSyncs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := &orderSyncer{key: "a/b.json", dir: dir, release: make(chan struct{})}
	s.commits.sync = o
	done := make(chan error, 1)
	go func() {
		err := s.Put(t.Context(), "a/b.json", strings.NewReader("hello"), 5, "")
		o.add("put-returned")
		done <- err
	}()
	o.release <- struct{}{} // the files call has begun
	o.release <- struct{}{} // the dirs call has begun
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "files(1,key-exists=false) files-synced dirs(a,key-exists=true) dirs-synced put-returned"
	if got := o.events(); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}

// A failed file sync fails the Put and leaves no file, temporary or not.
func TestFailedSyncFailsPut(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.commits.sync = failingSyncer{}
	err = s.Put(t.Context(), "a/b.json", strings.NewReader("hello"), 5, "")
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Put = %v, want the sync's error", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

type failingSyncer struct{ fsyncer }

func (failingSyncer) files(fs []*os.File) []error {
	errs := make([]error, len(fs))
	for i := range errs {
		errs[i] = fmt.Errorf("disk on fire")
	}
	return errs
}

// killEnv names the folder a re-executed test binary writes results to
// until it is killed (TestKilledWriterLeavesCompleteResults).
const killEnv = "LOCALSTORE_TEST_KILL_DIR"

// killModeEnv is "group" when the child writes with PutVolatile and
// PutGroup (TestKilledGroupWriterLeavesCompleteResults).
const killModeEnv = "LOCALSTORE_TEST_KILL_MODE"

// body is result i's content: its size and bytes vary with i.
func body(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("result %d;", i)), 200+(i%50)*100)
}

// TestKilledWriterChild is the child of
// TestKilledWriterLeavesCompleteResults: it writes results with Put and,
// after each Put returns, records it (a line in records.txt, as the worker
// records a result in Redis after Put returns), until it is killed.
func TestKilledWriterChild(t *testing.T) {
	dir := os.Getenv(killEnv)
	if dir == "" {
		t.Skip("the child of TestKilledWriterLeavesCompleteResults")
	}
	s, err := Open(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.OpenFile(filepath.Join(dir, "records.txt"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// put writes result i as the worker does: with one Put, or (group
	// mode) a volatile work file first, then the result and its companion
	// (key + ".md") in one PutGroup.
	put := func(s *Store, i int, key string, b []byte) error {
		return s.Put(t.Context(), key, bytes.NewReader(b), int64(len(b)), "")
	}
	if os.Getenv(killModeEnv) == "group" {
		put = func(s *Store, i int, key string, b []byte) error {
			if err := s.PutVolatile(t.Context(), fmt.Sprintf("work/item-%d/answer.json", i), bytes.NewReader(b), int64(len(b)), ""); err != nil {
				return err
			}
			return s.PutGroup(t.Context(), []storage.Object{{Key: key, Data: b}, {Key: key + ".md", Data: b}})
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; ; i += 16 {
				b := body(i)
				key := fmt.Sprintf("results/item-%d.json", i)
				if err := put(s, i, key, b); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				_, err := rec.WriteString(key + "\n")
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A writer killed with SIGKILL leaves every recorded result complete at its
// key, and nothing incomplete that a listing or a Get shows as a result.
// (A power loss is not simulated: what the test shows is that a record
// never runs ahead of its file and that files appear at keys whole.)
func TestKilledWriterLeavesCompleteResults(t *testing.T) {
	killedWriter(t, "")
}

// The same with an item's result and its companion written in one
// PutGroup after a volatile work file (as the worker writes an item): every
// recorded result is complete, and so is its companion, which was
// committed with it. (What a power loss would keep — the group's files,
// not the volatile ones — is TestPutGroupIsDurableWhenItReturns's.)
func TestKilledGroupWriterLeavesCompleteResults(t *testing.T) {
	recorded := killedWriter(t, "group")
	s, err := Open(filepath.Join(recorded.dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, key := range recorded.keys {
		var i int
		_, _ = fmt.Sscanf(key, "results/item-%d.json", &i)
		b, err := os.ReadFile(filepath.Join(s.Location(), filepath.FromSlash(key+".md")))
		if err != nil || !bytes.Equal(b, body(i)) {
			t.Errorf("%s.md: %d bytes, %v; want the %d bytes committed with %s", key, len(b), err, len(body(i)), key)
		}
	}
}

// killedRun is what killedWriter's child recorded.
type killedRun struct {
	dir  string
	keys []string
}

// killedWriter runs TestKilledWriterChild in mode, kills it with SIGKILL
// after 300 records, and checks every recorded and every listed result.
func killedWriter(t *testing.T, mode string) killedRun {
	if os.Getenv(killEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledWriterChild$", "-test.count", "1")
	cmd.Env = append(os.Environ(), killEnv+"="+dir, killModeEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	records := filepath.Join(dir, "records.txt")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(records); bytes.Count(b, []byte("\n")) >= 300 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child recorded under 300 results in 2 minutes:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s, err := Open(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(key string) {
		t.Helper()
		var i int
		pattern := "results/item-%d.json"
		if strings.HasPrefix(key, "work/") {
			pattern = "work/item-%d/answer.json"
		}
		if _, err := fmt.Sscanf(key, pattern, &i); err != nil {
			t.Fatalf("unexpected key %q", key)
		}
		r, err := s.Get(t.Context(), key, nil)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := body(i); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", key, len(got), sum(got), len(want), sum(want))
		}
	}
	f, err := os.Open(records)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run := killedRun{dir: dir}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if key := sc.Text(); strings.HasSuffix(key, ".json") { // not a line cut by the kill
			check(key)
			run.keys = append(run.keys, key)
		}
	}
	recorded := len(run.keys)
	listed := 0
	for o, err := range s.List(t.Context(), "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		check(o.Key)
		listed++
	}
	if listed < recorded {
		t.Errorf("%d results listed, %d recorded", listed, recorded)
	}
	t.Logf("killed after %d recorded results; %d listed", recorded, listed)
	return run
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
