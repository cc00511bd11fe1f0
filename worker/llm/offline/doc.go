// Package offline is an llm.Client that needs no service, no key and no
// network: it answers from the request itself, deterministically, so the
// whole pipeline can run (and be tested) without a model.
//
// Text: it summarises the Document=true parts of a request extractively.
// Sentences are split (abbreviations, decimals, initials and the CJK stops
// 。！？ are handled), weighted with TF-IDF, ranked by LexRank (PageRank over
// the cosine-similarity graph, each sentence keeping its 64 nearest
// neighbours, with a random jump mildly biased to the start of the
// document) and the top ones returned in document order. Running headers
// and footers (short sentences recurring three or more times), fragments,
// rules and overlong sentences are avoided, and near-duplicates skipped.
// When the request's schema is named "contract_digest" or "chunk_facts" the
// answer is JSON valid against the schema of that name in package prompts;
// without a schema it is plain text. Document parts that are themselves
// chunk_facts JSON (the input of the summary_reduce step) are read as facts.
// With "correspondence_digest" (an email message: a header block, a blank
// line, the body) the headers are copied, the body's central sentences are
// the summary, and body sentences that ask (please, could you, …), commit
// (we will, agreed, …) or name a date become action items, commitments and
// dates, each with the sentence as its verbatim quote.
//
// Page numbers come from the page markers defined by package prompts
// (prompts.PageMarker(3) == "[page 3]", at the start of each page); facts
// cite the page their sentence came from.
//
// Images: each image part is decoded (JPEG, PNG, GIF, WebP) and measured:
// size, orientation, dominant named colours, border (background) colour and
// whether it is white, transparency, and a blur estimate (variance of the
// Laplacian over tiles of a downscaled gray image). With the schema
// "caption" the answer is caption JSON built from those measurements;
// without a schema, a one-paragraph description. Answers are in English
// whatever language the prompt asks for.
//
// Usage is estimated (characters/4; images by 336-pixel tiles), Estimated
// is set, and prices are zero.
//
// The package knows nothing about jobs, storage or queues, and never logs
// document text.
package offline
