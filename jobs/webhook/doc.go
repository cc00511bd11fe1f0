// Package webhook is the HTTP side of llamapipe's completion webhooks:
// the headers a call carries, its signature (Sign, and Verify for
// receivers: HMAC-SHA256 over "<unix>.<body>" with a timestamp tolerance
// and several v1 values for key rotation), and the check that a webhook
// URL lies under an operator's allowed prefixes after parsing (Allowed,
// ParsePrefix: scheme, host and port, then the path at a segment boundary;
// no credentials, dot segments or encoded separators).
//
// The webhook task, the event body and the delivery state in the batch
// record are package jobs'. This package knows no batches, Redis or
// queues.
package webhook
