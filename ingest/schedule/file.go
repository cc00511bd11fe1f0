package schedule

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/ingest/watch"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
)

// file is the schedules YAML:
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
//	    keep_text: true              # also <file>.text.md and .chunks.jsonl
//
// The scheduler that holds the lead runs the watchers of watch entries
// itself (one per entry; edits start, restart or stop them).
type file struct {
	Timezone  string  `yaml:"timezone"`
	Schedules []entry `yaml:"schedules"`
}

// entry is one schedule: its name and when it runs, and the batch it asks
// for (the Spec's flat YAML: sources, out, task, queue, language, products,
// max_output_tokens, model_mode, keep_text, include, exclude, max_size,
// max_retry, max_queued (default jobs.DefaultMaxQueued), force, provider,
// model, tenant, webhook).
type entry struct {
	Name     string `yaml:"name"`
	Cron     string `yaml:"cron"`
	Timezone string `yaml:"timezone"`
	// Spec is the batch each run makes. Tenant owns the entry's batches
	// (budget and share: --tenants).
	jobs.Spec `yaml:",inline"`
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

// Watch is a watch entry of the schedules file, checked.
type Watch struct {
	// Name is the entry's name, also the watcher's.
	Name string
	// Payload is the batch the watcher feeds.
	Payload ingesttask.Payload
	// Settings are the watcher's own options.
	Settings WatchSettings
}

// key identifies a watch's configuration: a changed entry restarts its
// watcher.
func (w Watch) key() string { return fmt.Sprintf("%+v|%+v", w.Payload, w.Settings) }

// Schedules is a checked schedules file.
type Schedules struct {
	// Periodic are the cron entries as asynq periodic tasks (ingest tasks).
	Periodic []*asynq.PeriodicTaskConfig
	// Watches are the watch entries.
	Watches []Watch
}

// Load reads and checks a schedules file and returns its cron entries.
// Errors name the entry.
func Load(path string) ([]*asynq.PeriodicTaskConfig, error) {
	s, err := Parse(path)
	return s.Periodic, err
}

// Parse reads and checks a schedules file. Errors name the entry.
func Parse(path string) (Schedules, error) {
	var out Schedules
	b, err := os.ReadFile(path)
	if err != nil {
		return out, fmt.Errorf("schedules: %w", err)
	}
	var f file
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
		p := ingesttask.Payload{Schedule: e.Name, Spec: e.Spec}
		p.Task = cmp.Or(p.Task, jobs.TaskAuto)
		p.MaxQueued = cmp.Or(p.MaxQueued, jobs.DefaultMaxQueued) // as the CLI's --max-queued
		if p.Queue == "" {
			p.Queue = jobs.QueueNightly
			if e.Watch != nil {
				p.Queue = jobs.QueueDefault // an inbox's arrivals are awaited
			}
		}
		if err := speccheck.Validate(p.Spec); err != nil {
			return out, fmt.Errorf("%s: %w", where, err)
		}
		t, err := ingesttask.NewTask(p)
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
			out.Watches = append(out.Watches, Watch{Name: e.Name, Payload: p, Settings: WatchSettings{
				Name: e.Name, Interval: e.Watch.Interval, RollEvery: e.Watch.RollEvery, Timezone: tz, Settle: settle,
				Events: e.Watch.Events, Endpoint: e.Watch.EventsEndpoint}})
			continue
		}
		out.Periodic = append(out.Periodic, &asynq.PeriodicTaskConfig{Cronspec: spec, Task: t})
	}
	return out, nil
}
