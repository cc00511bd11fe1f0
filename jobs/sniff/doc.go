// Package sniff is the project's only content sniffer: it classifies an
// object by its first bytes (magic numbers, ISO base media brands, markup
// and text heuristics) and only uses the file name to refine a type the
// content already supports (zip → docx, text → md/html). Ingest uses it to
// decide an object's type and kind; the worker's image preparation uses it
// (without a name) to pick a decoder.
//
// It owns: the magic-number, brand and text rules, and HeadSize (how many
// leading bytes they need). The types it returns and their kinds are
// jobs.FileType and jobs.Kind, declared in package jobs so that payloads and
// manifests share them.
//
// It imports only jobs and the standard library, and must not know about
// storage, queues, workers or how a type is processed afterwards; it never
// reads more than the head it is given and never logs.
package sniff
