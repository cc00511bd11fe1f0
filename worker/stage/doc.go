// Package stage holds what the worker and its stages (worker/document,
// worker/caption) share about one item's work: the outcome a stage hands
// back (results written, tokens, cost), the validated model answer and the
// JSON-repairing ask that produces it, the meta block every result carries,
// how a result and a source object are written and read (Put: a failed
// write is tried again; one that cannot heal becomes a PermanentError
// whose reason names the key and what to change), the Keeper that keeps a
// model's answer in the batch's work area (or, failing that, in Redis
// through the Stash interface) until its result is stored, so that a
// failed write never pays the model twice, and the PermanentError a stage
// returns for bad input.
//
// It sits below the stages and the worker and knows only jobs (the payload,
// the result and work keys), storage, prompts and worker/llm. It must not
// know asynq, the batch record (Tracker: the Keeper's Redis fallback is a
// consumer-side interface), batch mode, tenants or any stage: when an
// error is retried, recorded or ends the batch is decided by the worker.
package stage
