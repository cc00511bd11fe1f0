package localstore

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
)

// A Put is made durable in a group commit: its bytes go to a temporary file
// without a sync, then the Put joins the committer's queue and waits. The
// committer takes every waiting Put at once and, for the whole group,
//
//  1. makes the temporary files' data durable (syncer.files),
//  2. renames each over its key,
//  3. makes the renames durable (syncer.dirs: the destination folders),
//
// then wakes the group. A Put joins the queue after its write, and a commit
// takes only what was queued when it started, so every Put waits for a
// commit that started after its own write. Up to maxCommits commits run at
// once (a slow sync does not hold up every Put behind it); when that many
// run, the next group gathers until one ends: under load a commit covers
// many Puts (its cost is paid once per group, not once per result), and a
// lone Put pays one commit.
//
// Because the data is durable before the rename, a file at a key is complete
// after a power loss whether or not its Put had returned; and because Put
// returns only after step 3, a caller that records a result after Put
// returns never records one that a power loss can take back.

// syncer makes files and folders durable. Both methods get a whole group at
// once, so an implementation may pay once for many (syncfs) or overlap the
// calls (parallel fdatasync).
type syncer interface {
	// files makes the data of the open files durable; errs[i] is files[i]'s.
	files(fs []*os.File) (errs []error)
	// dirs makes the entries of the folders durable (paths below root, "."
	// for root itself); errs[i] is dirs[i]'s.
	dirs(root *os.Root, dirs []string) (errs []error)
}

// pending is one Put waiting for its commit.
type pending struct {
	f        *os.File
	tmp, key string // slash-separated, below the root
	err      error
	done     chan struct{}
}

// maxCommits is how many group commits of one Store may run at once.
const maxCommits = 4

// committer runs the group commits of one Store.
type committer struct {
	sync syncer
	max  int // commits at once; 0 means maxCommits

	mu      sync.Mutex
	queue   []*pending
	running int
}

// commit makes p's file durable at its key and returns when it is (or the
// error that prevented it). On error the temporary file is removed (unless
// the error came after the rename).
func (c *committer) commit(root *os.Root, p *pending) error {
	c.commitAll(root, []*pending{p})
	return p.err
}

// commitAll makes the files of ps durable at their keys in one group
// commit (they join the queue together, so one commit takes them all, in
// order) and returns when it is done; each p.err says how its file fared.
func (c *committer) commitAll(root *os.Root, ps []*pending) {
	for _, p := range ps {
		p.done = make(chan struct{})
	}
	c.mu.Lock()
	c.queue = append(c.queue, ps...)
	if c.running < cmp.Or(c.max, maxCommits) {
		c.running++
		go c.loop(root)
	}
	c.mu.Unlock()
	for _, p := range ps {
		<-p.done
	}
}

// loop commits groups until the queue is empty.
func (c *committer) loop(root *os.Root) {
	for {
		c.mu.Lock()
		group := c.queue
		c.queue = nil
		if len(group) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.run(root, group)
		for _, p := range group {
			close(p.done)
		}
	}
}

// run commits one group (steps 1–3 above).
func (c *committer) run(root *os.Root, group []*pending) {
	files := make([]*os.File, len(group))
	for i, p := range group {
		files[i] = p.f
	}
	errs := c.sync.files(files)
	var dirs []string
	dirOf := map[string][]*pending{}
	for i, p := range group {
		err := errs[i]
		if cerr := p.f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = root.Rename(filepath.FromSlash(p.tmp), filepath.FromSlash(p.key))
		}
		if err != nil {
			p.err = err
			_ = root.Remove(filepath.FromSlash(p.tmp))
			continue
		}
		d := path.Dir(p.key)
		if _, ok := dirOf[d]; !ok {
			dirs = append(dirs, d)
		}
		dirOf[d] = append(dirOf[d], p)
	}
	if len(dirs) == 0 {
		return
	}
	for i, err := range c.sync.dirs(root, dirs) {
		if err == nil {
			continue
		}
		for _, p := range dirOf[dirs[i]] {
			// Written and renamed, but the rename may not survive a power
			// loss: the caller must not count on it (a retry rewrites it).
			p.err = fmt.Errorf("make the new file durable: %w", err)
		}
	}
}

// defaultSyncer is what a Store commits with. syncfs(2) costs less CPU
// (one call per group) but waits for everything dirty on the file system,
// other programs' writes included: measured on a disk shared with busy
// builds, its commits took seconds (README, "Measured").
var defaultSyncer syncer = fsyncer{}

// fsyncer is the portable syncer: one fsync per file and per folder, all of
// a group's at once (the file system overlaps them in its journal commits).
type fsyncer struct{}

func (fsyncer) files(fs []*os.File) []error {
	return parallel(len(fs), func(i int) error { return fs[i].Sync() })
}

// dirs syncs each folder and the folders above it up to the root, which a
// Put may have created (once per group for a folder shared by many).
func (fsyncer) dirs(root *os.Root, dirs []string) []error {
	var all []string
	index := map[string]int{}
	for _, d := range dirs {
		for ; ; d = path.Dir(d) {
			if _, ok := index[d]; !ok {
				index[d] = len(all)
				all = append(all, d)
			}
			if d == "." {
				break
			}
		}
	}
	errs := parallel(len(all), func(i int) error { return syncDir(root, all[i]) })
	out := make([]error, len(dirs))
	for i, d := range dirs {
		for ; ; d = path.Dir(d) {
			out[i] = errors.Join(out[i], errs[index[d]])
			if d == "." {
				break
			}
		}
	}
	return out
}

// syncDir fsyncs the folder dir below root.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(filepath.FromSlash(dir))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// maxParallelSyncs bounds the syncs of a group in flight at once.
const maxParallelSyncs = 64

// parallel runs fn(0..n-1), at most maxParallelSyncs at once, and returns
// their errors by index.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	if n == 1 {
		errs[0] = fn(0)
		return errs
	}
	sem := make(chan struct{}, maxParallelSyncs)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}
