// Package backends opens a storage.Store from a location URL, choosing the
// backend by scheme. It is the only package that imports every backend.
package backends

import (
	"context"
	"fmt"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/storage/s3store"
)

// Config holds what backends need beyond the URL. The zero value works for
// AWS S3 with the default credential chain and for local folders.
type Config struct {
	// S3 configures the S3 backend (endpoint, region, path-style).
	S3 s3store.Config
}

// Open returns a Store rooted at the location (s3://bucket/prefix, file://
// URL or plain path). Opening creates nothing: a local folder that does not
// exist reads as storage.ErrNotExist ("folder … does not exist") and is
// created by the first write into it, like an S3 prefix, so a source is
// never created and an output appears with its first result.
func Open(ctx context.Context, location string, cfg Config) (storage.Store, error) {
	loc, err := storage.ParseLocation(location)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "s3":
		return s3store.Open(ctx, loc.Bucket, loc.Prefix, cfg.S3)
	case "file":
		return localstore.Open(loc.Prefix)
	}
	return nil, fmt.Errorf("open %s: unsupported scheme %q", location, loc.Scheme)
}
