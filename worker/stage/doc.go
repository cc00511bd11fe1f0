// Package stage holds what the worker and its stages (worker/document,
// worker/caption) share about one item's work: the outcome a stage hands
// back (results written, tokens, cost), the validated model answer and the
// JSON-repairing ask that produces it, the meta block every result carries,
// how a result and a source object are written and read (Put: a failed
// write is tried again; one that cannot heal becomes a PermanentError
// whose reason names the key and what to change), the Keeper that keeps a
// model's answer in Redis through the Stash interface (in the batch's work
// area when Redis refuses it or it is over 256 KB) until its result is
// stored, so that a failed write never pays the model twice, and the
// PermanentError a stage returns for bad input.
//
// A kept answer is not made durable. Redis replicates asynchronously, so a
// failover (or a restart of a Redis without persistence) may lose answers
// kept just before it, as a power loss may lose one kept in a local work
// area. Then the retry takes the answer from the result an earlier attempt
// stored (Keeper.Stored) or, where none was stored, asks the model again:
// the one case where a call is paid twice, as after a power loss.
//
// It sits below the stages and the worker and knows only jobs (the payload,
// the result and work keys), storage, prompts and worker/llm. It must not
// know asynq, the batch record (Tracker: the Keeper's Redis fallback is a
// consumer-side interface), batch mode, tenants or any stage: when an
// error is retried, recorded or ends the batch is decided by the worker.
package stage
