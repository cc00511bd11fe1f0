package metrics

import (
	"log/slog"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Names of the worker-pool gauges RegisterQueueCollectors adds.
const (
	WorkersAlive      = "llamapipe_workers_alive"
	WorkerConcurrency = "llamapipe_worker_concurrency"
	WorkerActiveTasks = "llamapipe_worker_active_tasks"
	QueueScrapeErrors = "llamapipe_queue_scrape_errors_total"
)

// QueueMetricNames returns the names of the series asynq's queue collector
// (github.com/hibiken/asynq/x/metrics) exports, and of the worker-pool
// gauges that RegisterQueueCollectors adds beside it.
func QueueMetricNames() []string {
	return []string{
		"asynq_tasks_enqueued_total", // gauge despite its name: tasks by queue and state (active, pending, scheduled, retry, archived, completed)
		"asynq_queue_size",
		"asynq_queue_latency_seconds",
		"asynq_queue_memory_usage_approx_bytes",
		"asynq_tasks_processed_total",
		"asynq_tasks_failed_total",
		"asynq_queue_paused_total",
		WorkersAlive,
		WorkerConcurrency,
		WorkerActiveTasks,
		QueueScrapeErrors,
	}
}

// RegisterQueueCollectors registers asynq's queue collector and a collector
// of live workers (asynq servers with a fresh heartbeat) on reg. Both read
// Redis through insp at every scrape; register them in one process only
// (the dashboard), not in every worker.
func RegisterQueueCollectors(reg prometheus.Registerer, insp *asynq.Inspector, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := reg.Register(asynqmetrics.NewQueueMetricsCollector(insp)); err != nil {
		return err
	}
	return reg.Register(&workersCollector{
		insp:        insp,
		log:         log,
		alive:       prometheus.NewDesc(WorkersAlive, "Worker processes (asynq servers) with a fresh heartbeat in Redis.", nil, nil),
		concurrency: prometheus.NewDesc(WorkerConcurrency, "Sum of the concurrency of live worker processes.", nil, nil),
		active:      prometheus.NewDesc(WorkerActiveTasks, "Tasks being processed by live worker processes.", nil, nil),
		errs:        prometheus.NewCounter(prometheus.CounterOpts{Name: QueueScrapeErrors, Help: "Scrapes that could not read the worker list from Redis."}),
	})
}

type workersCollector struct {
	insp                       *asynq.Inspector
	log                        *slog.Logger
	alive, concurrency, active *prometheus.Desc
	errs                       prometheus.Counter
}

func (c *workersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.alive
	ch <- c.concurrency
	ch <- c.active
	c.errs.Describe(ch)
}

func (c *workersCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errs.Collect(ch)
	servers, err := c.insp.Servers()
	if err != nil {
		// No gauges rather than a misleading zero: "no worker alive" must
		// not fire because Redis was briefly unreachable.
		c.errs.Inc()
		c.log.Warn("metrics: cannot list workers", "err", err)
		return
	}
	var conc, active int
	for _, s := range servers {
		conc += s.Concurrency
		active += len(s.ActiveWorkers)
	}
	ch <- prometheus.MustNewConstMetric(c.alive, prometheus.GaugeValue, float64(len(servers)))
	ch <- prometheus.MustNewConstMetric(c.concurrency, prometheus.GaugeValue, float64(conc))
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
}
