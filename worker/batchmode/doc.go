// Package batchmode is the worker's side of batch mode. An item whose batch
// uses the provider's batch API prepares everything as online (chunks, page
// images, resized images, prompts), but instead of calling the model it
// leaves its request pending and waits:
//
//   - The request line is written once under the item's output location
//     (.llamapipe/batch/<group>/<id>.line; the ID is a hash of the request,
//     so identical requests share one line and one answer). Redis keeps
//     only IDs and states. The item task returns ErrDeferred, which is not a
//     failure: asynq keeps it in its retry set.
//   - A collector task (one per group and minute) cuts the pending lines
//     into input files at the provider's limits and submits them; a poller
//     task per provider job, re-enqueued with a delay, follows the job.
//   - When the job is done, each answer is stored next to its line and the
//     waiting tasks are run again at once; they find the answer and go on
//     exactly as after an online call (map → reduce, caption JSON, manifest).
//     Lines the provider failed or never answered (the window expired) are
//     marked online: the waiting task then calls the model online, once.
//
// Batch mode is a wrapper around the model client: the worker gives an item
// whose batch uses the batch API (jobs.UsesBatchAPI) the client of
// Mode.For, and every other item its plain online client, so online calls
// never pass through this package. HandleCollect and HandlePoll are the
// collector's and poller's asynq handlers; the worker's mux registers them.
//
// Its Redis keys are llamapipe:bm:{group}:... (the group is the preset or
// provider and the model): a request's hash r:<id>, pending, waiters:<id>,
// job:<job>, jobmeta:<job> and jobdone:<job>.
//
// It knows the model only as an llm.Client and the provider's batch API as a
// batchapi.Client; it must not know documents, images, prompts or tenants'
// budgets, and must not import the worker package or ingest.
package batchmode
