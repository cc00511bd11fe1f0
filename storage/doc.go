// Package storage is llamapipe's view of object storage: bytes in, bytes out.
//
// It owns the Store interface, the errors callers branch on, the object-key
// rules shared by every backend, and location URLs (s3://bucket/prefix or a
// local path / file:// URL). It knows nothing about jobs, batches or models,
// and nothing about any particular backend (no AWS SDK here).
//
// Errors: a missing object is ErrNotExist (= fs.ErrNotExist); an unsafe key
// is ErrInvalidKey, refused before any backend is touched; a range starting
// past the end is ErrInvalidRange. IsTransient tells failures worth retrying
// (network, timeouts, S3 5xx and throttling) from permanent ones; backends
// mark their own errors through a Transient() bool method.
//
// Backends live in sub-packages (storage/s3store, storage/localstore); the
// storage/backends package opens a Store from a location URL, and
// storage/storagetest is the one test suite every backend must pass.
package storage
