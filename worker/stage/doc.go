// Package stage holds what the worker and its stages (worker/document,
// worker/caption) share about one item's work: the outcome a stage hands
// back (results written, tokens, cost), the validated model answer and the
// JSON-repairing ask that produces it, the meta block every result carries,
// how a result and a source object are written and read, and the
// PermanentError a stage returns for bad input.
//
// It sits below the stages and the worker and knows only jobs (the payload
// and the result keys), storage, prompts and worker/llm. It must not know
// asynq, the batch record (Tracker), batch mode, tenants or any stage: when
// an error is retried, recorded or ends the batch is decided by the worker.
package stage
