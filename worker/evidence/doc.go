// Package evidence checks the quotes a model cites against the text of the
// pages it cites them from.
//
// A digest (contract_digest, chunk_facts) carries its evidence as objects
// with a "quote" and its "pages". Check compares one quote with the
// extracted text of the cited pages after Normalize (whitespace, words
// hyphenated at line ends, typographic quotes and dashes, compatibility
// forms such as ligatures, and case); Annotate walks a whole answer and
// marks every quote object "verified": true or false, or "unverifiable"
// when all its pages were read as images (scanned pages have no text to
// compare with).
//
// The package knows nothing of models, storage or batches: the document
// stage hands it page texts and an answer.
package evidence
