// Package ingesttask is the contract of the ingest task: a batch to create
// (a jobs.Spec and the schedule entry that asked for it), queued by the
// scheduler and run by the workers, so the scheduler itself stays light.
// Like package jobs, it imports neither ingest nor worker.
package ingesttask
