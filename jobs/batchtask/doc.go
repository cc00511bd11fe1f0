// Package batchtask is the contract of batch mode's own tasks: the
// collector that cuts pending requests into a provider input file, and the
// poller that follows one provider job. Payloads name a request group and a
// provider job only; the requests themselves are in Redis under jobs' keys.
//
// Like package jobs, it imports neither ingest nor worker.
package batchtask
