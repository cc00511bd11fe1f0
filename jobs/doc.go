// Package jobs is the contract between ingest and the workers: task type
// names, versioned JSON payloads, queue names and priorities, deterministic
// task IDs and result keys, and the batch record (counters and per-item
// manifest entries) that both sides keep in Redis.
//
// Payloads carry references only — location, key, ETag, page range — never
// document text, image bytes or secrets: operators read them in the dashboard.
//
// jobs imports neither ingest nor worker, and knows nothing about models or
// storage backends.
package jobs
