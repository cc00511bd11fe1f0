package localstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/llamapipe/llamapipe/storage"
)

var (
	_ storage.GroupPutter    = (*Store)(nil)
	_ storage.VolatilePutter = (*Store)(nil)
)

// PutGroup writes every object to a temporary file, then makes them all
// durable at their keys in one group commit (commit.go): the files' data
// synced, renamed in the order given, their folders synced once each. It
// returns when the commit is done, so an item's results written with one
// PutGroup cost one commit, not one each. When an object cannot be written
// to its temporary file, none is committed; when the commit fails for some,
// the error names each of them.
func (s *Store) PutGroup(ctx context.Context, objs []storage.Object) error {
	ps := make([]*pending, 0, len(objs))
	var root *os.Root
	for _, o := range objs {
		r, p, err := s.writeTemp(ctx, o.Key, bytes.NewReader(o.Data), int64(len(o.Data)))
		if err != nil {
			for _, p := range ps {
				p.f.Close()
				_ = root.Remove(filepath.FromSlash(p.tmp))
			}
			return err
		}
		root = r
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil
	}
	s.commits.commitAll(root, ps)
	var err error
	for _, p := range ps {
		if p.err != nil {
			err = errors.Join(err, s.errorf("put", p.key, p.err))
		}
	}
	return err
}

// PutVolatile writes an object atomically, as Put does (a temporary file
// renamed over the key), but syncs nothing: it costs no commit, and after a
// power loss the object may be missing or still the old one (see
// storage.VolatilePutter). A crash of the process does not lose it.
func (s *Store) PutVolatile(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	root, p, err := s.writeTemp(ctx, key, r, size)
	if err != nil {
		return err
	}
	err = p.f.Close()
	if err == nil {
		err = root.Rename(filepath.FromSlash(p.tmp), filepath.FromSlash(p.key))
	}
	if err != nil {
		_ = root.Remove(filepath.FromSlash(p.tmp))
		return s.errorf("put", p.key, err)
	}
	return nil
}
