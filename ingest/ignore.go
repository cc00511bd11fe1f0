package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/llamapipe/llamapipe/storage"
)

// IgnoreFile, at the top of a listed source, names keys of that source
// that are not inputs, one glob a line in --exclude's syntax, relative to
// the source ('#' starts a comment), like .gitignore or rclone's
// --exclude-from. The file itself is never an input either. Listed
// sources only: a batch of explicit items takes what it names.
const IgnoreFile = ".llamapipeignore"

// maxIgnoreBytes caps the ignore file read.
const maxIgnoreBytes = 64 << 10

// readIgnore reads a source's IgnoreFile; none is no globs.
func readIgnore(ctx context.Context, st storage.Store) ([]string, error) {
	r, err := st.Get(ctx, IgnoreFile, nil)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	defer r.Close()
	var globs []string
	sc := bufio.NewScanner(io.LimitReader(r, maxIgnoreBytes))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			globs = append(globs, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	return globs, nil
}

// selected reports whether a listed key of s is one the batch takes: not
// the ignore file, nor a key it names, and selected by the batch's globs.
func (s *source) selected(key string, include, exclude []string) bool {
	if key == IgnoreFile || matchAny(s.ignore, key) {
		return false
	}
	return selected(key, s.skipPrefix, include, exclude)
}
