package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/lease"
	"github.com/llamapipe/llamapipe/prompts"
)

// Config configures Run.
type Config struct {
	// Path is the schedules file, re-read every SyncInterval. Required.
	Path string
	// SyncInterval is how often the file is re-read. Zero means asynq's
	// default (3m); the CLI's default is 1m.
	SyncInterval time.Duration
	// Redis is the queue's connection; Client a client of the same Redis
	// (the leader lease, the watches' state). Required.
	Redis  asynq.RedisConnOpt
	Client redis.UniversalClient
	// Ingester feeds the batches of the watch entries; each watcher gets a
	// copy. Required.
	Ingester *ingest.Ingester
	// Prompts are the prompt overrides the watch entries' results are
	// fingerprinted with (the workers' files). Nil means the embedded ones.
	Prompts prompts.Set
	// Model names the provider and model a watch entry that names none is
	// fingerprinted with (the workers'). Required when a watch entry names
	// no model.
	Model func() (provider, model string, err error)
	// Logger is required.
	Logger *slog.Logger
}

// Run waits for the scheduler's lead (one scheduler enqueues; more wait as
// standbys), then enqueues the cron entries' ingest tasks and runs the
// watch entries' watchers until ctx ends or the lead is lost. A bad
// schedules file is a *ConfigError.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Path == "" || cfg.Redis == nil || cfg.Client == nil || cfg.Ingester == nil || cfg.Logger == nil {
		return errors.New("schedule: Path, Redis, Client, Ingester and Logger are required")
	}
	log := cfg.Logger
	sched, err := Parse(cfg.Path)
	if err != nil {
		return &ConfigError{Msg: err.Error()}
	}
	lost, err := lease.Acquire(ctx, cfg.Client, jobs.SchedulerLeaderKey(), lease.Holder(), jobs.LeaseTTL, "scheduler", log) // one scheduler enqueues, others wait as standbys
	if err != nil {
		return err
	}
	ws := newWatchers(ctx, func(ctx context.Context, w Watch) error {
		in := *cfg.Ingester
		o := ingest.Options{Spec: w.Payload.Spec, Prompts: cfg.Prompts}
		if o.Model == "" {
			if cfg.Model == nil {
				return fmt.Errorf("watch %s: names no model and none is configured", w.Name)
			}
			p, m, err := cfg.Model()
			if err != nil {
				return err
			}
			o.Provider, o.Model = p, m
		}
		return RunWatch(ctx, &in, cfg.Client, o, w.Settings)
	}, log)
	defer ws.stop()
	mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
		RedisConnOpt:               cfg.Redis,
		PeriodicTaskConfigProvider: &FileProvider{Path: cfg.Path, Logger: log, OnWatches: ws.sync},
		SyncInterval:               cfg.SyncInterval,
		SchedulerOpts:              &asynq.SchedulerOpts{Logger: asynqLogger{log}, LogLevel: asynq.WarnLevel},
	})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	log.Info("scheduler running", "schedules", len(sched.Periodic), "watches", len(sched.Watches))
	select {
	case <-ctx.Done():
	case <-lost:
	}
	mgr.Shutdown()
	return nil
}
