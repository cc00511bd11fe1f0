package storage

import (
	"bytes"
	"context"
	"io"
)

// Object is one object of a PutGroup: Data to be stored at Key.
type Object struct {
	Key         string
	Data        []byte
	ContentType string
}

// GroupPutter is what a Store that can make several objects durable
// together also implements (storage/localstore: one group commit for all of
// them, instead of one each). Check for it with a type assertion, or call
// PutGroup.
type GroupPutter interface {
	// PutGroup writes each object as Put does (atomically: a reader sees
	// the old object or the whole new one) and returns when all of them are
	// durable. On an error, any of them may or may not have been written,
	// each whole or not at all; writing the group again is the remedy.
	PutGroup(ctx context.Context, objs []Object) error
}

// VolatilePutter is what a Store that pays for durability per write also
// implements (storage/localstore, whose Put syncs to the disk): PutVolatile
// writes an object atomically, as Put does, but does not make it durable:
// after a power loss or an operating-system crash (not after a crash of
// the calling process) the object may be missing, or still the old one. It
// is for objects a caller can do without: caches, scratch, markers that
// only save work. Check for it with a type assertion, or call PutVolatile.
type VolatilePutter interface {
	PutVolatile(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
}

// PutGroup writes objs to st: in one group when st is a GroupPutter, else
// with one Put each, in order, stopping at the first error.
func PutGroup(ctx context.Context, st Store, objs []Object) error {
	if g, ok := st.(GroupPutter); ok {
		return g.PutGroup(ctx, objs)
	}
	for _, o := range objs {
		if err := st.Put(ctx, o.Key, bytes.NewReader(o.Data), int64(len(o.Data)), o.ContentType); err != nil {
			return err
		}
	}
	return nil
}

// PutVolatile writes an object st need not make durable (see
// VolatilePutter): with st's PutVolatile when it has one, else with its
// Put (S3 has no cheaper write).
func PutVolatile(ctx context.Context, st Store, key string, r io.Reader, size int64, contentType string) error {
	if v, ok := st.(VolatilePutter); ok {
		return v.PutVolatile(ctx, key, r, size, contentType)
	}
	return st.Put(ctx, key, r, size, contentType)
}
