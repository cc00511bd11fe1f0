package localstore

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncfsSyncer makes a group durable with syncfs(2): one call per file
// system the group's files (or folders) are on, which writes back
// everything dirty on that file system, the group's files included. Not
// used by Store (see init below); kept to measure it.
type syncfsSyncer struct{}

func (syncfsSyncer) files(fs []*os.File) []error {
	fds := make([]int, len(fs))
	for i, f := range fs {
		fds[i] = int(f.Fd())
	}
	return syncfsEach(fds)
}

func (syncfsSyncer) dirs(root *os.Root, dirs []string) []error {
	fds := make([]int, len(dirs))
	errs := make([]error, len(dirs))
	var open []*os.File
	for i, d := range dirs {
		f, err := root.Open(filepath.FromSlash(d))
		if err != nil {
			errs[i], fds[i] = err, -1
			continue
		}
		open = append(open, f)
		fds[i] = int(f.Fd())
	}
	for i, err := range syncfsEach(fds) {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	for _, f := range open {
		f.Close()
	}
	return errs
}

// syncfsEach calls syncfs once per file system among fds (-1: skipped) and
// gives each fd its file system's answer.
func syncfsEach(fds []int) []error {
	errs := make([]error, len(fds))
	done := map[uint64]error{}
	for i, fd := range fds {
		if fd < 0 {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			errs[i] = err
			continue
		}
		err, ok := done[st.Dev]
		if !ok {
			err = unix.Syncfs(fd)
			done[st.Dev] = err
		}
		errs[i] = err
	}
	return errs
}

func init() {
	// Measured against the default in BenchmarkPutParallel (README,
	// "Measured"): far less CPU per Put, but each commit waits for
	// everything dirty on the file system, other programs' writes too.
	benchSyncers = append(benchSyncers, namedSyncer{"group-syncfs", syncfsSyncer{}, 0})
}
