package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/storage/s3store"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// The fault tests start their own redis-server and MinIO (binaries from
// .ci/with-services), so killing them disturbs no other test.

const restartItems = 30

// outage is the least time a killed service stays down: longer than the
// clients' own quick retries, so the handlers themselves see the errors and
// asynq has to retry the tasks. go-redis v9 retries a command 3 times with
// at most 512ms backoff, and each retry dials up to 5 times (~100ms apart):
// about 4s in all on a loaded machine, so 3s was not always enough (the
// record of an item in flight then went through after the restart and no
// task was retried). The AWS SDK makes 3 attempts.
const outage = 6 * time.Second

// service is one server process a test owns: it can be SIGKILLed and
// started again on the same port with the same data directory.
type service struct {
	t     *testing.T
	name  string
	args  []string
	env   []string
	log   string
	ready func(ctx context.Context) error
	cmd   *exec.Cmd
	exit  chan struct{}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the process and waits (up to 30s) until ready succeeds.
func (s *service) start() {
	s.t.Helper()
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	s.cmd, s.exit = cmd, exit
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.ready(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exit:
			s.t.Fatalf("%s exited while starting: %v\n%s", s.name, err, s.tail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready after 30s: %v\n%s", s.name, err, s.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *service) kill() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exit
	s.cmd = nil
}

func (s *service) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// startRedis runs a private redis-server with an fsync-always AOF in a
// temporary folder, and returns it with its redis:// URL.
func startRedis(t *testing.T) (*service, string) {
	t.Helper()
	bin := os.Getenv("LLAMAPIPE_TEST_REDIS_SERVER")
	if bin == "" {
		t.Fatal("no test Redis/MinIO: run the tests with `make test` (LLAMAPIPE_TEST_REDIS_SERVER is not set)")
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	s := &service{t: t, name: "redis-server", log: filepath.Join(dir, "redis.log"),
		args: []string{bin, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "",
			"--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"}}
	probe := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = probe.Close() })
	s.ready = func(ctx context.Context) error { return probe.Ping(ctx).Err() } // LOADING until the AOF is read
	s.start()
	t.Cleanup(s.kill)
	return s, "redis://" + addr + "/0"
}

// startMinIO runs a private MinIO with its data in a temporary folder and
// returns it with its endpoint and credentials.
func startMinIO(t *testing.T) (s *service, endpoint, access, secret string) {
	t.Helper()
	bin := os.Getenv("LLAMAPIPE_TEST_MINIO")
	if bin == "" {
		t.Fatal("no test Redis/MinIO: run the tests with `make test` (LLAMAPIPE_TEST_MINIO is not set)")
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	access, secret = "restart-test", "restart-test-secret"
	endpoint = "http://" + addr
	s = &service{t: t, name: "minio", log: filepath.Join(dir, "minio.log"),
		args: []string{bin, "server", "--quiet", "--address", addr, filepath.Join(dir, "data")},
		env:  []string{"MINIO_ROOT_USER=" + access, "MINIO_ROOT_PASSWORD=" + secret, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}}
	hc := &http.Client{Timeout: time.Second}
	s.ready = func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	}
	s.start()
	t.Cleanup(s.kill)
	return s, endpoint, access, secret
}

// slowModel answers like the offline provider, but only after a pause, so a
// batch is in flight long enough to break something under it. It counts
// calls begun and ended.
type slowModel struct {
	llm.Client
	delay        time.Duration
	begun, ended atomic.Int64
}

func (m *slowModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	m.begun.Add(1)
	defer m.ended.Add(1)
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return llm.Response{}, ctx.Err()
	}
	return m.Client.Complete(ctx, req)
}

// lockedBuffer collects a worker's logs for a failing test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLoggedWorker is env.startWorker with the worker's logs (asynq's
// included) kept and shown when the test fails.
func (e *env) startLoggedWorker(model llm.Client, concurrency int) {
	e.t.Helper()
	logs := &lockedBuffer{}
	e.reg = metrics.NewRegistry()
	e.runWorker(worker.Config{Model: model, Concurrency: concurrency, Metrics: metrics.New(e.reg),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		func() { e.t.Logf("worker log:\n%s", logs.String()) })
}

// queueState describes the batch's tasks in asynq, for a failure message.
func queueState(t *testing.T, url string) string {
	t.Helper()
	insp := asynq.NewInspector(jobstest.ConnOpt(t, url))
	defer insp.Close()
	var sb strings.Builder
	for _, q := range []string{jobs.QueueDefault} {
		for state, list := range map[string]func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			"pending": insp.ListPendingTasks, "active": insp.ListActiveTasks, "scheduled": insp.ListScheduledTasks,
			"retry": insp.ListRetryTasks, "archived": insp.ListArchivedTasks,
		} {
			tasks, err := list(q)
			if err != nil {
				fmt.Fprintf(&sb, "%s %s: %v\n", q, state, err)
				continue
			}
			for _, ti := range tasks {
				fmt.Fprintf(&sb, "%s %s %s %s retried=%d orphaned=%v next=%s last_err=%q\n", q, state, ti.Type, ti.ID, ti.Retried,
					ti.IsOrphaned, ti.NextProcessAt.Format(time.TimeOnly), ti.LastErr)
			}
		}
	}
	return sb.String()
}

// putTextInputs writes n small distinct contracts.
func putTextInputs(t *testing.T, n int, put func(key string, data []byte)) {
	t.Helper()
	for i := range n {
		put(fmt.Sprintf("doc%02d.txt", i), fmt.Appendf(nil,
			"SERVICE AGREEMENT number %d between Alpha GmbH and Beta S.A. The term is %d months. "+
				"Fees are EUR %d per month. Either party may terminate with 30 days notice. French law governs.", i, i+1, 100*(i+1)))
	}
}

// waitFinalized polls the batch until it is finalized, tolerating errors
// while a service is down, and fails after timeout.
func waitFinalized(t *testing.T, tr *jobs.Tracker, url, batch string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	var c jobs.Counts
	slow := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !slow.IsZero() && time.Now().After(slow) {
			t.Logf("batch %s not finalized after 20s: counts %+v; tasks:\n%s", batch, c, queueState(t, url))
			slow = time.Time{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, last = tr.Counts(ctx, batch)
		cancel()
		if last == nil && c.Finalized {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("batch %s not finalized after %s: counts %+v, last error %v; tasks:\n%s", batch, timeout, c, last, queueState(t, url))
}

// waitDone polls until at least n items of the batch are recorded.
func waitDone(t *testing.T, tr *jobs.Tracker, batch string, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := tr.Counts(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		if c.Ended() >= n {
			if c.Ended() >= restartItems {
				t.Fatalf("the whole batch ended before the fault could be injected: %+v", c)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d items ended after 30s: %+v", n, c)
		}
	}
}

// waitCallInFlight waits until a model call is in flight, so that the fault
// injected next hits an item between its call and its record (right after
// an item is recorded its worker may still be tidying up or dequeuing).
func waitCallInFlight(t *testing.T, m *slowModel) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); m.begun.Load() <= m.ended.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no model call in flight after 10s")
		}
	}
}

// waitInFlightEnded waits until every model call begun before now has
// ended, so each item in flight when a service died went on to use it.
func waitInFlightEnded(t *testing.T, m *slowModel) {
	t.Helper()
	begun := m.begun.Load()
	for deadline := time.Now().Add(10 * time.Second); m.ended.Load() < begun; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("model calls in flight did not end: %d begun, %d ended", begun, m.ended.Load())
		}
	}
}

// checkAllDoneOnce asserts every input is in the manifest exactly once, done
// with its results present, and that the fault hit at least one item.
// retriesSeen sums the worker's llamapipe_retries_total: attempts that
// failed and were retried. (An outage of the store or of Redis is not a
// failure of the item, so it does not show in the manifest's attempts.)
func (e *env) retriesSeen() float64 {
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == metrics.RetriesTotal {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func checkAllDoneOnce(t *testing.T, es []jobs.Entry, out storage.Store, retriesSeen float64) {
	t.Helper()
	m := byName(t, es) // fails on a duplicate
	if len(es) != restartItems {
		t.Fatalf("%d manifest entries, want %d", len(es), restartItems)
	}
	retried := 0
	for i := range restartItems {
		name := fmt.Sprintf("doc%02d.txt", i)
		e, ok := m[name]
		if !ok {
			t.Errorf("%s is not in the manifest", name)
			continue
		}
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q after %d attempts", name, e.Status, e.Error, e.Attempts)
			continue
		}
		if e.Attempts > 1 {
			retried++
		}
		if len(e.Results) != 2 {
			t.Errorf("%s: results %v, want the summary's .json and .md", name, e.Results)
		}
		for _, k := range e.Results {
			if _, err := out.Stat(context.Background(), k); err != nil {
				t.Errorf("%s: result %s: %v", name, k, err)
			}
		}
	}
	if retried == 0 && retriesSeen == 0 {
		t.Error("no item needed a second attempt: the outage hit nothing in flight, so the test proved nothing")
	}
	t.Logf("%d of %d items show more than one attempt; %v attempts were retried in all", retried, restartItems, retriesSeen)
}

func TestRedisRestartMidBatch(t *testing.T) {
	rs, url := startRedis(t)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, url: url, tracker: jobs.NewTracker(rdb, ""),
		open: func(ctx context.Context, loc string) (storage.Store, error) {
			return backends.Open(ctx, loc, backends.Config{})
		}}
	src, outDir := t.TempDir(), t.TempDir()
	putTextInputs(t, restartItems, func(key string, data []byte) {
		if err := os.WriteFile(filepath.Join(src, key), data, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	start := time.Now()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, MaxRetry: 10}})
	model := &slowModel{Client: offline.New(offline.Options{}), delay: 100 * time.Millisecond}
	e.startLoggedWorker(model, 4)

	waitDone(t, e.tracker, res.BatchID, 5)
	waitCallInFlight(t, model)
	rs.kill()
	killed := time.Now()
	// Every item in flight finishes its model call and then meets a dead
	// Redis (recording the item, acking the task).
	waitInFlightEnded(t, model)
	time.Sleep(time.Until(killed.Add(outage)))
	rs.start()
	t.Logf("redis down for %s", time.Since(killed).Round(time.Millisecond))

	// Usually a few seconds. But a task whose dequeue or acknowledgement
	// was cut off by the kill stays "active" in Redis with nobody working on
	// it: asynq v0.26 retries a failed acknowledgement with a context it has
	// already cancelled (processor.go markAsComplete/retry: defer cancel()
	// before the syncer runs the closure), so only its recoverer brings such
	// a task back — once its 30s lease has been expired for 30s, on a
	// 1-minute tick. Hence the long deadline; the re-run is harmless (the
	// item is recorded once).
	waitFinalized(t, e.tracker, e.url, res.BatchID, 3*time.Minute)
	if d := time.Since(killed); d > 30*time.Second {
		t.Logf("slow recovery (%s): an orphaned active task waited for asynq's recoverer", d.Round(time.Second))
	}
	t.Logf("batch finalized %s after the kill, %s in all", time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	out, _ := e.open(context.Background(), outDir)
	checkAllDoneOnce(t, readManifest(t, out), out, e.retriesSeen())
}

func TestMinIORestartMidBatch(t *testing.T) {
	ms, endpoint, ak, sk := startMinIO(t)
	e := newEnv(t) // the shared test Redis: only MinIO goes down here
	cfg := backends.Config{S3: s3store.Config{Endpoint: endpoint, AccessKey: ak, SecretKey: sk, PathStyle: true}}
	e.open = func(ctx context.Context, loc string) (storage.Store, error) { return backends.Open(ctx, loc, cfg) }
	ctx := context.Background()
	const bucket = "restart"
	root, err := s3store.Open(ctx, bucket, "", cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	// MinIO may answer "not initialized" for a moment after its liveness probe.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = root.EnsureBucket(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create bucket: %v", err)
		}
	}
	srcURL, outURL := "s3://"+bucket+"/inbox", "s3://"+bucket+"/results"
	src, err := e.open(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	putTextInputs(t, restartItems, func(key string, data []byte) {
		if err := src.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "text/plain"); err != nil {
			t.Fatal(err)
		}
	})
	start := time.Now()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{srcURL}, Out: outURL, MaxRetry: 10}})
	model := &slowModel{Client: offline.New(offline.Options{}), delay: 100 * time.Millisecond}
	e.startLoggedWorker(model, 4)

	waitDone(t, e.tracker, res.BatchID, 5)
	waitCallInFlight(t, model)
	ms.kill()
	killed := time.Now()
	// Every item in flight finishes its model call and then meets a dead
	// MinIO (writing its results).
	waitInFlightEnded(t, model)
	time.Sleep(time.Until(killed.Add(outage)))
	ms.start()
	t.Logf("minio down for %s", time.Since(killed).Round(time.Millisecond))

	waitFinalized(t, e.tracker, e.url, res.BatchID, 60*time.Second)
	t.Logf("batch finalized %s after the kill, %s in all", time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	out, err := e.open(ctx, outURL)
	if err != nil {
		t.Fatal(err)
	}
	es := readManifest(t, out)
	checkAllDoneOnce(t, es, out, e.retriesSeen())
	for _, en := range es {
		if !strings.HasPrefix(en.Source, srcURL+"/") {
			t.Errorf("manifest source %q is not under %s", en.Source, srcURL)
		}
	}
}
