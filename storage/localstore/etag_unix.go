//go:build unix

package localstore

import (
	"io/fs"
	"syscall"
)

// fileIdentity returns the inode number and the inode change time (ns), which
// change when Put replaces a file even if size and mtime happen to match.
func fileIdentity(fi fs.FileInfo) (ino uint64, ctimeNs int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return uint64(st.Ino), st.Ctim.Nano()
}
