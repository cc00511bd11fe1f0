// Package sniff classifies an object by its first bytes (magic numbers,
// markup and text heuristics) and only uses the file name to refine a type
// the content already supports (zip → docx, text → md/html).
//
// It owns: the list of recognised types, the magic-number and text rules and
// the mapping of a type to its kind ("document" or "image").
//
// It must not know about storage, queues, workers or how a type is processed
// afterwards; it never reads more than the head it is given and never logs.
package sniff
