// Package s3store is the storage.Store backend for Amazon S3 and
// S3-compatible services (MinIO, Ceph RGW, ...), built on aws-sdk-go-v2.
//
// It owns the S3 client set-up (endpoint, region, path-style addressing,
// credentials from the SDK's default chain or static keys), multipart
// uploads through the SDK's upload manager, ranged reads, paginated listings,
// presigned GET URLs (storage.Presigner),
// and the mapping of S3 errors onto storage's: NoSuchKey / NotFound become
// storage.ErrNotExist, InvalidRange becomes storage.ErrInvalidRange, and
// every error knows whether it is transient (see storage.IsTransient). It
// knows nothing about jobs, documents or models.
//
// Keys are relative to the prefix given to Open: with prefix "runs/7", key
// "out/a.json" is the S3 object "runs/7/out/a.json".
package s3store
