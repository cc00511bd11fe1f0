// Package ingest lists sources (local folders or S3 prefixes), sniffs each
// object's type from its first bytes, creates a batch and enqueues one task
// per item. Empty, oversized, unreadable, unknown or unsupported objects are
// recorded in the batch as skipped with a reason — never silently dropped.
//
// ingest speaks to the workers only through package jobs; it never imports
// worker/.
package ingest
