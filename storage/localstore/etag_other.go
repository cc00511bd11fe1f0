//go:build !unix

package localstore

import "io/fs"

// fileIdentity has nothing beyond size and mtime to offer on this platform.
func fileIdentity(fs.FileInfo) (ino uint64, ctimeNs int64) { return 0, 0 }
