// Package storagetest is the conformance suite every storage.Store backend
// must pass (Run), plus helpers that give other packages' tests a fresh
// local or MinIO-backed Store (NewLocalStore, NewS3Store, S3Config).
//
// It owns what "behaves like a Store" means in practice: round trips, ranges,
// atomic overwrites, ETags, listing order and paging, deletes, the error
// sentinels, refusal of unsafe keys, large objects and cancellation. It
// knows nothing about jobs or documents.
package storagetest
