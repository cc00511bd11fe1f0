// Package chunk splits extracted text into pieces that fit a model's
// token budget, cutting at paragraph breaks, then sentence ends, then line
// breaks, then word boundaries, and only as a last resort inside a word (at
// a rune boundary), with a small overlap between consecutive pieces.
//
// It owns: the cheap token estimate (EstimateTokens) and the split rules.
//
// It must not know about file formats, extraction, storage, prompts or
// models (a real tokenizer would be the caller's business); it never logs.
package chunk
