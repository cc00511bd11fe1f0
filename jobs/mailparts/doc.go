// Package mailparts reads RFC 5322 / MIME messages (.eml) with the
// standard library (net/mail, mime, mime/multipart): a message's headers
// and text body, and its attachments, each addressed by a part path
// ("2", "2.1": 1-based child indices through multiparts and nested
// messages). Ingest lists a message's attachments as their own items;
// the worker re-reads an attachment's bytes from the message by its path,
// so no payload and no work area ever holds them.
//
// It owns the walk and its budgets (nesting depth, part count, decoded
// bytes per part and in all). It imports only the standard library and
// golang.org/x/net/html/charset, and knows nothing of storage, queues or
// how an attachment is processed.
package mailparts
