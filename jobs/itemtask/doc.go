// Package itemtask is the compact wire form of an item task (jobs.TypeItem):
// the payload carries references only — the batch ID, the source's index in
// the batch's Sources, the object's key, ETag and size, its sniffed type and
// its fingerprint — and the reader fills in the rest (output location,
// worker options, task, kind, item ID, result base) from the batch record
// (jobs.Batch), which holds them once for every item.
//
// Version 1 payloads (every field spelled out, jobs.ItemPayload's JSON) are
// still read, so tasks queued by an older build run after an upgrade. An
// older build does not read version 2: upgrade workers before ingest.
//
// It must not know ingest or worker; both use it.
package itemtask
