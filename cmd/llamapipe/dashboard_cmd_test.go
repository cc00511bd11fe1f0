package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/dashboard"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// dashboardRoot runs `llamapipe dashboard` with the global flags, whether
// or not app.go lists it yet.
func dashboardRoot(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "llamapipe", Flags: globalFlags(), Writer: stdout, ErrWriter: stderr,
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Commands:       []*cli.Command{dashboardCommand(stdout, stderr)},
	}
}

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

func TestDashboardRefusesOpenAddressWithoutCredentials(t *testing.T) {
	t.Setenv(envDashboardPassword, "")
	t.Setenv(envDashboardToken, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"llamapipe", "dashboard", "--listen", "0.0.0.0:8080"}, "refusing to serve the dashboard on 0.0.0.0:8080 without credentials"},
		{[]string{"llamapipe", "dashboard", "--listen", ":8080"}, "without credentials"},
		{[]string{"llamapipe", "dashboard", "--auth-user", "ops"}, "--auth-user needs a password"},
		{[]string{"llamapipe", "dashboard", "--auth-token-file", "/nonexistent/tokens"}, "--auth-token-file"},
		{[]string{"llamapipe", "dashboard", "--dashboard-users", "/nonexistent/users"}, "--dashboard-users"},
	} {
		err := dashboardRoot(io.Discard, io.Discard).Run(context.Background(), c.args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(ee.msg, c.want) {
			t.Errorf("%v: %v, want a usage error containing %q", c.args[1:], err, c.want)
		}
	}
}

func TestDashboardCommandServesWithBasicAuth(t *testing.T) {
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	const password = "pw-7c1e0b9a"
	t.Setenv(envDashboardPassword, password)
	t.Setenv(envDashboardToken, "")
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// DB 7 is the dashboard tests'; this test only reads it.
		done <- dashboardRoot(&stdout, &stderr).Run(ctx, []string{"llamapipe", "--redis-url", "redis://" + addr + "/7",
			"--log-format", "json", "dashboard", "--listen", "127.0.0.1:0", "--auth-user", "ops"})
	}()
	urlRe := regexp.MustCompile(`dashboard on (http://127\.0\.0\.1:\d+)/`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("dashboard exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard did not start: %s", stderr.String())
		}
	}
	get := func(path string, auth bool) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth {
			req.SetBasicAuth("ops", password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := get("/healthz", false); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code := get("/", false); code != 401 {
		t.Errorf("/ without credentials = %d, want 401", code)
	}
	if code := get("/", true); code != 200 {
		t.Errorf("/ with credentials = %d, want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dashboard after cancel: %v", err)
	}
	if strings.Contains(stderr.String()+stdout.String(), password) {
		t.Error("the password appears in the output")
	}
	if !strings.Contains(stderr.String(), `"basic_auth":true`) {
		t.Errorf("log does not say basic auth is on: %s", stderr.String())
	}
}

// TestDashboardMetricsServeQueueCollectors: the dashboard as the command
// wires it serves worker/metrics' registry (asynq's queue collector, the
// live-worker gauges) at /metrics and /readyz follows Redis.
func TestDashboardMetricsServeQueueCollectors(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	opt := jobstest.ConnOpt(t, url)
	cfg := dashboard.Config{Tracker: jobs.NewTracker(rdb, ""), RedisConnOpt: opt, Auth: dashboard.Auth{Tokens: []string{"tok"}}}
	var pingErr error
	closeMetrics, err := dashboardMetrics(&cfg, opt, func(context.Context) error { return pingErr }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeMetrics()
	h, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := asynq.NewClient(opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:item", nil), asynq.Queue(jobs.QueueNightly)); err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("/metrics", "tok")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{`asynq_tasks_enqueued_total{queue="nightly",state="pending"} 1`, "llamapipe_workers_alive 0", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without credentials = %d, want 401", code)
	}
	if code, _ := get("/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d with Redis up", code)
	}
	pingErr = errors.New("connection refused")
	if code, _ := get("/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Redis down, want 503", code)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d with Redis down, want 200", code)
	}
}
