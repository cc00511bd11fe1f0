// Package storage is llamapipe's view of object storage: bytes in, bytes out.
//
// It owns the Store interface, the errors callers branch on, the object-key
// rules shared by every backend, and location URLs (s3://bucket/prefix or a
// local path / file:// URL). It knows nothing about jobs, batches or models.
//
// Backends live in sub-packages (storage/s3store, storage/localstore); the
// storage/backends package opens a Store from a location URL, and
// storage/storagetest is the one test suite every backend must pass.
package storage
