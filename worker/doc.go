// Package worker runs llamapipe's Asynq handlers: it fetches an item's
// object, extracts a document's text or prepares an image, asks the model
// (through worker/llm) for a summary or a caption, writes the result next to
// the batch's other results, and records the item's final state in the
// batch. When the last item of a batch ends, a finalize task writes
// manifest.jsonl and report.md.
//
// Every item ends in its batch exactly once: done, or failed with a reason a
// person can act on. Permanent failures (bad input) skip retries; transient
// ones retry with backoff; a panic in a handler becomes a failed attempt, not
// a dead process. The worker knows jobs/ (the contract) and storage/, and
// nothing under ingest/: the PDF page split that long PDFs are cut with into
// chunk PDFs for their map tasks is worker/pdfsplit.
package worker
