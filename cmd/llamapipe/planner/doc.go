// Package planner estimates what a batch would cost before anything is
// sent: items by kind, PDF pages, images, model requests, input and output
// tokens, and the online and batch-API cost under a model profile's prices.
// `llamapipe plan` prints its estimate and the HTTP API's submit answer
// carries it.
//
// It lists through ingest.Ingester.Scan (so it sees exactly the items a
// batch would hold, skipped and unchanged ones included) and reads documents
// and image headers to count pages and tiles. On large inputs it estimates a
// sample exactly and extrapolates the rest by size.
//
// It must not enqueue or write anything, call a model, or know about
// flags, HTTP or Redis.
package planner
