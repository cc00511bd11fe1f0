// Package iox holds the small io helpers the storage backends share: a reader
// that enforces a declared size and one that stops when its context ends. It
// knows nothing about any backend.
package iox

import (
	"context"
	"fmt"
	"io"
)

// ErrSizeMismatch reports that a reader produced a different number of bytes
// than the size declared for it.
var ErrSizeMismatch = fmt.Errorf("storage: body size does not match declared size")

// Exact returns r unchanged when size < 0 (unknown). Otherwise it returns a
// reader that fails with ErrSizeMismatch when r ends before size bytes or has
// more than size bytes, so that a write fed from it is abandoned instead of
// committing a short or long object.
func Exact(r io.Reader, size int64) io.Reader {
	if size < 0 {
		return r
	}
	return &exactReader{r: r, left: size}
}

type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		// Make sure the source is exhausted too.
		var one [1]byte
		for {
			n, err := e.r.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("%w: more bytes than declared", ErrSizeMismatch)
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("%w: %d bytes missing", ErrSizeMismatch, e.left)
	}
	if err == io.EOF {
		err = nil // reported by the next Read, after the extra-bytes check
	}
	return n, err
}

// WithContext returns a reader that returns ctx.Err() once ctx is done,
// checked before every Read of r.
func WithContext(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ReadCloser pairs a Reader with the Closer it was derived from.
type ReadCloser struct {
	io.Reader
	io.Closer
}
