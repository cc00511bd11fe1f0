// Package jobs is the contract between ingest and the workers: the batch
// spec (Spec: one type, one Validate, used by the CLI, the API, schedules,
// ingest payloads and batch records), task type names, versioned JSON
// payloads, queue names and priorities, file types and kinds, deterministic
// task IDs and result keys, and the batch record (counters and per-item
// manifest entries) that both sides keep in Redis.
//
// jobs owns the Redis contract: keys.go builds every key llamapipe writes
// (batch records, the content cache, tenants' spend, watches, leases, the
// API's idempotency keys, the model gates, batch mode) and says how long
// each lives; other packages call it instead of formatting keys. asynq and
// redis_rate keep their own keys. lifetime.go ends a finalized batch's
// records after a retention and tells an expired batch from a lost one.
// Subpackages: sniff (content types), plan (estimates), webhook
// (signatures, allowed URLs), redisconn (Redis URLs, durability), tenants,
// lease, dashboard, localredis.
//
// Payloads carry references only — location, key, ETag, page range — never
// document text, image bytes or secrets: operators read them in the dashboard.
//
// jobs imports neither ingest nor worker, and knows nothing about models or
// storage backends.
package jobs
