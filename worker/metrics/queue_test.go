package metrics

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// dbMetrics is this package's test Redis database (see jobstest's list).
const dbMetrics = 15

func netListen(t *testing.T) (net.Listener, error) {
	t.Helper()
	return net.Listen("tcp", "127.0.0.1:0")
}

func TestQueueCollectorsExportQueueAndWorkers(t *testing.T) {
	url, _ := jobstest.Redis(t, dbMetrics)
	opt := jobstest.ConnOpt(t, url)
	client := asynq.NewClient(opt)
	defer client.Close()
	for i := range 3 {
		if _, err := client.Enqueue(asynq.NewTask("test:item", []byte{byte(i)}), asynq.Queue("default")); err != nil {
			t.Fatal(err)
		}
	}
	// A live worker serving another queue, so the three stay pending.
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 3, Queues: map[string]int{"elsewhere": 1}, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	reg := prometheus.NewRegistry()
	if err := RegisterQueueCollectors(reg, insp, nil); err != nil {
		t.Fatal(err)
	}

	// The server's first heartbeat is written as it starts; wait for it
	// (bounded, not a timing assertion).
	var alive float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if alive = gaugeValue(t, reg, WorkersAlive, nil); alive == 1 {
			break
		}
	}
	if alive != 1 {
		t.Fatalf("%s = %v, want 1", WorkersAlive, alive)
	}
	if got := gaugeValue(t, reg, WorkerConcurrency, nil); got != 3 {
		t.Errorf("%s = %v, want 3", WorkerConcurrency, got)
	}
	if got := gaugeValue(t, reg, "asynq_tasks_enqueued_total", map[string]string{"queue": "default", "state": "pending"}); got != 3 {
		t.Errorf("pending tasks in default = %v, want 3", got)
	}

	// QueueMetricNames is what alert rules are checked against: it must be
	// exactly what the collectors export.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := QueueMetricNames()
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		if !slices.Contains(names, mf.GetName()) {
			t.Errorf("collector exports %s, not in QueueMetricNames", mf.GetName())
		}
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("QueueMetricNames lists %s, not exported", n)
		}
	}
}

func TestWorkersCollectorWithoutRedisExportsNoZero(t *testing.T) {
	insp := asynq.NewInspector(unreachable{})
	defer insp.Close()
	reg := prometheus.NewRegistry()
	if err := RegisterQueueCollectors(reg, insp, nil); err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather() // asynq's collector reports its own failure
	if v := valueIn(mfs, WorkersAlive, nil); v != -1 {
		t.Fatalf("%s = %v exported without Redis: an alert would see no worker alive", WorkersAlive, v)
	}
	if n := valueIn(mfs, QueueScrapeErrors, nil); n != 1 {
		t.Errorf("%s = %v, want 1", QueueScrapeErrors, n)
	}
}

// unreachable is a Redis nobody answers, without go-redis' dial retries.
type unreachable struct{}

func (unreachable) MakeRedisClient() any {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
}

// gaugeValue gathers reg and returns the value of the gauge or counter
// series name with the given labels, or -1 when it is not exported.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return valueIn(mfs, name, labels)
}

func valueIn(mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
