// Package schedule runs batches on their own: the schedules file (cron
// entries and watched inboxes), the asynq PeriodicTaskConfigProvider that
// re-reads it, the scheduler that holds the lead and enqueues ingest tasks,
// the supervisor that runs one watcher per watch entry, and RunWatch, the
// one way a watcher is started (by the scheduler and by `llamapipe watch`).
//
// A schedule entry becomes a ingesttask.Payload; the workers run it as an
// ingest task. schedule sits beside ingest: it imports ingest, ingest/watch,
// jobs, jobs/lease and prompts, and never worker/ or cmd/. What it needs to
// know about models (the provider and model results are fingerprinted with)
// it is handed as a func in Config.
package schedule
