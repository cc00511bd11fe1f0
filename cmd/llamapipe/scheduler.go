package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/urfave/cli/v3"
	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/watch"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/lease"
	"github.com/llamapipe/llamapipe/prompts"
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
//	    model_mode: auto             # online, batch or auto (batch on nightly)
//	  - name: contracts-inbox        # a watched inbox instead of a cron
//	    watch: {interval: 1m, roll_every: 0, settle: 10s, events: "redis://minio-redis:6379/0?key=bucketevents"}
//	    sources: [s3://legal/inbox]
//	    out: s3://legal/summaries
//
// The scheduler that holds the lead runs the watchers of watch entries
// itself (one per entry; edits start, restart or stop them).
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
	Webhook         string   `yaml:"webhook"`
	ModelMode       string   `yaml:"model_mode"`
	// Tenant owns the entry's batches (budget and share: --tenants).
	Tenant string `yaml:"tenant"`
	// Watch makes the entry a watched inbox instead of a cron schedule.
	Watch *watchEntry `yaml:"watch"`
}

// watchEntry is the watch: part of a schedule entry.
type watchEntry struct {
	Interval       time.Duration  `yaml:"interval"`
	RollEvery      int            `yaml:"roll_every"`
	Settle         *time.Duration `yaml:"settle"`
	Events         string         `yaml:"events"`
	EventsEndpoint string         `yaml:"events_endpoint"`
}

// watchSpec is a watch entry, checked.
type watchSpec struct {
	name     string
	payload  jobs.IngestPayload
	settings watchSettings
}

// key identifies a watch's configuration: a changed entry restarts its
// watcher.
func (w watchSpec) key() string { return fmt.Sprintf("%+v|%+v", w.payload, w.settings) }

// schedules is a checked schedules file.
type schedules struct {
	periodic []*asynq.PeriodicTaskConfig
	watches  []watchSpec
}

// loadSchedules reads and checks a schedules file and returns its cron
// entries. Errors name the entry.
func loadSchedules(path string) ([]*asynq.PeriodicTaskConfig, error) {
	s, err := parseSchedules(path)
	return s.periodic, err
}

// parseSchedules reads and checks a schedules file. Errors name the entry.
func parseSchedules(path string) (schedules, error) {
	var out schedules
	b, err := os.ReadFile(path)
	if err != nil {
		return out, fmt.Errorf("schedules: %w", err)
	}
	var f scheduleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return out, fmt.Errorf("schedules %s: %w", path, err)
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	names := map[string]bool{}
	for i, e := range f.Schedules {
		where := fmt.Sprintf("schedules %s: entry %d (%s)", path, i+1, e.Name)
		if e.Name == "" || names[e.Name] {
			return out, fmt.Errorf("%s: each entry needs a unique name", where)
		}
		if (e.Watch == nil) == (strings.TrimSpace(e.Cron) == "") {
			return out, fmt.Errorf("%s: give either cron or watch", where)
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
			return out, fmt.Errorf("%s: timezone %q: %w", where, tz, err)
		}
		spec := "CRON_TZ=" + tz + " " + strings.TrimSpace(e.Cron)
		if e.Watch == nil {
			if _, err := parser.Parse(spec); err != nil {
				return out, fmt.Errorf("%s: cron %q: %w", where, e.Cron, err)
			}
		}
		task := e.Task
		if task == "" {
			task = jobs.TaskAuto
		}
		if task != jobs.TaskAuto && task != jobs.TaskSummarize && task != jobs.TaskCaption {
			return out, fmt.Errorf("%s: task %q: use auto, summarize or caption", where, e.Task)
		}
		queue := e.Queue
		if queue == "" {
			queue = jobs.QueueNightly
			if e.Watch != nil {
				queue = jobs.QueueDefault // an inbox's arrivals are awaited
			}
		}
		if !jobs.ValidQueue(queue) {
			return out, fmt.Errorf("%s: queue %q: use critical, default or nightly", where, e.Queue)
		}
		if !jobs.ValidModelMode(e.ModelMode) {
			return out, fmt.Errorf("%s: model_mode %q: use online, batch or auto", where, e.ModelMode)
		}
		p := jobs.IngestPayload{
			Schedule: e.Name, Sources: e.Sources, Out: e.Out, Task: task, Queue: queue,
			Include: e.Include, Exclude: e.Exclude, MaxSize: e.MaxSize, MaxRetry: e.MaxRetry, Force: e.Force,
			Options: jobs.Options{Language: e.Language, Products: e.Products, MaxOutputTokens: e.MaxOutputTokens,
				ModelMode: e.ModelMode},
			Provider: e.Provider, Model: e.Model, Webhook: e.Webhook, Tenant: e.Tenant,
		}
		t, err := jobs.NewIngestTask(p)
		if err != nil {
			return out, fmt.Errorf("%s: %w", where, err)
		}
		if e.Watch != nil {
			if !watch.ValidName(e.Name) {
				return out, fmt.Errorf("%s: a watch's name may hold letters, digits, '-', '_' and '.'", where)
			}
			if e.Watch.Interval < 0 || e.Watch.RollEvery < 0 {
				return out, fmt.Errorf("%s: watch interval and roll_every must not be negative", where)
			}
			settle := 10 * time.Second
			if e.Watch.Settle != nil {
				settle = *e.Watch.Settle
			}
			out.watches = append(out.watches, watchSpec{name: e.Name, payload: p, settings: watchSettings{
				Name: e.Name, Interval: e.Watch.Interval, RollEvery: e.Watch.RollEvery, Timezone: tz, Settle: settle,
				Events: e.Watch.Events, Endpoint: e.Watch.EventsEndpoint}})
			continue
		}
		out.periodic = append(out.periodic, &asynq.PeriodicTaskConfig{Cronspec: spec, Task: t})
	}
	return out, nil
}

// fileProvider re-reads the schedules file at each sync, so edits apply
// without a restart; a broken edit keeps the last good schedules.
type fileProvider struct {
	path string
	log  *slog.Logger
	last []*asynq.PeriodicTaskConfig
	// watches, when set, is told the watch entries of each good read.
	watches func([]watchSpec)
}

func (p *fileProvider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	s, err := parseSchedules(p.path)
	if err != nil {
		if p.last != nil {
			p.log.Error("schedules file is broken: keeping the last good schedules", "error", err.Error())
			return p.last, nil
		}
		return nil, err
	}
	p.last = s.periodic
	if p.watches != nil {
		p.watches(s.watches)
	}
	return s.periodic, nil
}

// watchers runs the watchers of the schedules' watch entries: started when
// an entry appears, restarted when it changes, stopped when it goes.
type watchers struct {
	ctx     context.Context
	start   func(ctx context.Context, w watchSpec) error
	log     *slog.Logger
	mu      sync.Mutex
	running map[string]*runningWatch
	wg      sync.WaitGroup
}

type runningWatch struct {
	key    string
	cancel context.CancelFunc
	done   chan struct{}
}

func (ws *watchers) sync(specs []watchSpec) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	want := map[string]watchSpec{}
	for _, s := range specs {
		want[s.name] = s
	}
	for name, r := range ws.running {
		if s, ok := want[name]; !ok || s.key() != r.key {
			r.cancel()
			<-r.done
			delete(ws.running, name)
			ws.log.Info("watch stopped", "watch", name)
		}
	}
	for name, s := range want {
		if ws.running[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(ws.ctx)
		r := &runningWatch{key: s.key(), cancel: cancel, done: make(chan struct{})}
		ws.running[name] = r
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			defer close(r.done)
			// A watcher that fails (its inbox unreachable) is tried again.
			for ctx.Err() == nil {
				if err := ws.start(ctx, s); err != nil && ctx.Err() == nil {
					ws.log.Error("watch failed: restarting in 30s", "watch", s.name, "error", err.Error())
					select {
					case <-ctx.Done():
					case <-time.After(30 * time.Second):
					}
				}
			}
		}()
		ws.log.Info("watch started", "watch", name)
	}
}

// stop stops every watcher and waits for them.
func (ws *watchers) stop() {
	ws.mu.Lock()
	for _, r := range ws.running {
		r.cancel()
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}

// leaderKey is the Redis key of the scheduler lock: one scheduler enqueues,
// others wait as standbys.
const leaderKey = "llamapipe:scheduler:leader"

func schedulerCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "scheduler",
		Usage: "enqueue ingests on cron schedules (one scheduler runs; more wait as standbys)",
		// Provider flags: watch entries that name no model fingerprint their
		// results with the workers' (give the scheduler the same flags).
		Flags: concat(providerFlags(), []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "schedules YAML file (re-read every --sync-interval)", Sources: env("SCHEDULES"), Required: true},
			&cli.DurationFlag{Name: "sync-interval", Value: time.Minute, Usage: "how often the schedules file is re-read", Sources: env("SCHEDULES_SYNC_INTERVAL")},
			&cli.BoolFlag{Name: "check", Usage: "only check the schedules file and list its entries", Sources: env("SCHEDULES_CHECK")},
			promptFlag(),
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			sched, err := parseSchedules(cmd.String("config"))
			if err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			if cmd.Bool("check") {
				for _, c := range sched.periodic {
					fmt.Fprintf(cmd.Root().Writer, "%s\t%s\n", c.Cronspec, c.Task.Payload())
				}
				for _, w := range sched.watches {
					fmt.Fprintf(cmd.Root().Writer, "watch %s\t%s\n", w.name, strings.Join(w.payload.Sources, ","))
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
			ps, err := loadPrompts(cmd)
			if err != nil {
				return err
			}
			ws := &watchers{ctx: ctx, log: log, running: map[string]*runningWatch{},
				start: func(ctx context.Context, w watchSpec) error {
					in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log}
					o := withPrompts(ingest.PayloadOptions(w.payload), ps)
					if o.Model == "" {
						prof, err := plannedProfile(cmd)
						if err != nil {
							return err
						}
						o.Provider, o.Model = prof.Provider, prof.Model
					}
					return runWatch(ctx, in, c.rdb, o, w.settings, log)
				}}
			defer ws.stop()
			mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
				RedisConnOpt:               c.opt,
				PeriodicTaskConfigProvider: &fileProvider{path: cmd.String("config"), log: log, watches: ws.sync},
				SyncInterval:               cmd.Duration("sync-interval"),
				SchedulerOpts:              &asynq.SchedulerOpts{Logger: schedLogger{log}, LogLevel: asynq.WarnLevel},
			})
			if err != nil {
				return err
			}
			if err := mgr.Start(); err != nil {
				return fmt.Errorf("scheduler: %w", err)
			}
			log.Info("scheduler running", "schedules", len(sched.periodic), "watches", len(sched.watches))
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

func withPrompts(o ingest.Options, ps prompts.Set) ingest.Options {
	o.Prompts = ps
	return o
}
