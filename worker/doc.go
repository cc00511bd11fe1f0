// Package worker runs llamapipe's Asynq handlers and an item's life: it
// fetches an item's object, hands it to its stage, classifies what came
// back (done, skipped, retried, failed for good, batch stopped) and records
// the item's final state in the batch. When the last item of a batch ends,
// a finalize task writes manifest.jsonl and report.md.
//
// The stages are packages below it, composed here and never calling back:
// worker/document (extract → chunk → map → reduce → write; the worker
// enqueues the map and reduce tasks it plans and records the item) and
// worker/caption (prepare → caption → write). Each gets the item, its output
// store and the model as explicit per-item parameters (see stages.go);
// worker/stage holds what they and the worker share (the outcome, the
// validated answer, result meta, PermanentError).
//
// Every item ends in its batch exactly once: done, or failed with a reason a
// person can act on. Permanent failures (bad input) skip retries; transient
// ones retry with backoff; a panic in a handler becomes a failed attempt, not
// a dead process. The worker knows jobs/ (the contract) and storage/, and
// nothing under ingest/: the PDF page split that long PDFs are cut with into
// chunk PDFs for their map tasks is worker/pdfsplit.
package worker
