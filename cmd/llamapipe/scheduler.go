package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/urfave/cli/v3"
	"gopkg.in/yaml.v3"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/lease"
)

// scheduleFile is the schedules YAML:
//
//	timezone: Europe/Berlin          # default for entries; UTC when empty
//	schedules:
//	  - name: nightly-catalog
//	    cron: "0 2 * * *"            # minute hour day month weekday
//	    timezone: America/New_York   # optional, per entry
//	    sources: [s3://catalog/images]
//	    out: s3://catalog/captions
//	    task: caption                # auto, summarize or caption
//	    queue: nightly
//	    language: en
//	    include: ["**/*.jpg"]
//	    products: s3://catalog/products.csv
type scheduleFile struct {
	Timezone  string          `yaml:"timezone"`
	Schedules []scheduleEntry `yaml:"schedules"`
}

type scheduleEntry struct {
	Name            string   `yaml:"name"`
	Cron            string   `yaml:"cron"`
	Timezone        string   `yaml:"timezone"`
	Sources         []string `yaml:"sources"`
	Out             string   `yaml:"out"`
	Task            string   `yaml:"task"`
	Queue           string   `yaml:"queue"`
	Include         []string `yaml:"include"`
	Exclude         []string `yaml:"exclude"`
	MaxSize         int64    `yaml:"max_size"`
	MaxRetry        int      `yaml:"max_retry"`
	Language        string   `yaml:"language"`
	Products        string   `yaml:"products"`
	MaxOutputTokens int      `yaml:"max_output_tokens"`
	Force           bool     `yaml:"force"`
	Provider        string   `yaml:"provider"`
	Model           string   `yaml:"model"`
}

// loadSchedules reads and checks a schedules file. Errors name the entry.
func loadSchedules(path string) ([]*asynq.PeriodicTaskConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules: %w", err)
	}
	var f scheduleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	names := map[string]bool{}
	var out []*asynq.PeriodicTaskConfig
	for i, e := range f.Schedules {
		where := fmt.Sprintf("schedules %s: entry %d (%s)", path, i+1, e.Name)
		if e.Name == "" || names[e.Name] {
			return nil, fmt.Errorf("%s: each entry needs a unique name", where)
		}
		names[e.Name] = true
		tz := e.Timezone
		if tz == "" {
			tz = f.Timezone
		}
		if tz == "" {
			tz = "UTC"
		}
		if _, err := time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("%s: timezone %q: %w", where, tz, err)
		}
		spec := "CRON_TZ=" + tz + " " + strings.TrimSpace(e.Cron)
		if _, err := parser.Parse(spec); err != nil {
			return nil, fmt.Errorf("%s: cron %q: %w", where, e.Cron, err)
		}
		task := e.Task
		if task == "" {
			task = jobs.TaskAuto
		}
		if task != jobs.TaskAuto && task != jobs.TaskSummarize && task != jobs.TaskCaption {
			return nil, fmt.Errorf("%s: task %q: use auto, summarize or caption", where, e.Task)
		}
		queue := e.Queue
		if queue == "" {
			queue = jobs.QueueNightly
		}
		if !jobs.ValidQueue(queue) {
			return nil, fmt.Errorf("%s: queue %q: use critical, default or nightly", where, e.Queue)
		}
		t, err := jobs.NewIngestTask(jobs.IngestPayload{
			Schedule: e.Name, Sources: e.Sources, Out: e.Out, Task: task, Queue: queue,
			Include: e.Include, Exclude: e.Exclude, MaxSize: e.MaxSize, MaxRetry: e.MaxRetry, Force: e.Force,
			Options:  jobs.Options{Language: e.Language, Products: e.Products, MaxOutputTokens: e.MaxOutputTokens},
			Provider: e.Provider, Model: e.Model,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, &asynq.PeriodicTaskConfig{Cronspec: spec, Task: t})
	}
	return out, nil
}

// fileProvider re-reads the schedules file at each sync, so edits apply
// without a restart; a broken edit keeps the last good schedules.
type fileProvider struct {
	path string
	log  *slog.Logger
	last []*asynq.PeriodicTaskConfig
}

func (p *fileProvider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	cfgs, err := loadSchedules(p.path)
	if err != nil {
		if p.last != nil {
			p.log.Error("schedules file is broken: keeping the last good schedules", "error", err.Error())
			return p.last, nil
		}
		return nil, err
	}
	p.last = cfgs
	return cfgs, nil
}

// leaderKey is the Redis key of the scheduler lock: one scheduler enqueues,
// others wait as standbys.
const leaderKey = "llamapipe:scheduler:leader"

func schedulerCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "scheduler",
		Usage: "enqueue ingests on cron schedules (one scheduler runs; more wait as standbys)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "schedules YAML file (re-read every --sync-interval)", Sources: env("SCHEDULES"), Required: true},
			&cli.DurationFlag{Name: "sync-interval", Value: time.Minute, Usage: "how often the schedules file is re-read", Sources: env("SCHEDULES_SYNC_INTERVAL")},
			&cli.BoolFlag{Name: "check", Usage: "only check the schedules file and list its entries", Sources: env("SCHEDULES_CHECK")},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfgs, err := loadSchedules(cmd.String("config"))
			if err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			if cmd.Bool("check") {
				for _, c := range cfgs {
					fmt.Fprintf(cmd.Root().Writer, "%s\t%s\n", c.Cronspec, c.Task.Payload())
				}
				return nil
			}
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			lost, err := lease.Acquire(ctx, c.rdb, leaderKey, lease.Holder(), 30*time.Second, "scheduler", log)
			if err != nil {
				return err
			}
			mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
				RedisConnOpt:               c.opt,
				PeriodicTaskConfigProvider: &fileProvider{path: cmd.String("config"), log: log},
				SyncInterval:               cmd.Duration("sync-interval"),
				SchedulerOpts:              &asynq.SchedulerOpts{Logger: schedLogger{log}, LogLevel: asynq.WarnLevel},
			})
			if err != nil {
				return err
			}
			if err := mgr.Start(); err != nil {
				return fmt.Errorf("scheduler: %w", err)
			}
			log.Info("scheduler running", "schedules", len(cfgs))
			select {
			case <-ctx.Done():
			case <-lost:
			}
			mgr.Shutdown()
			return nil
		},
	}
}

// schedLogger adapts slog to asynq's Logger for the scheduler.
type schedLogger struct{ l *slog.Logger }

func (a schedLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a schedLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a schedLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a schedLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a schedLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
