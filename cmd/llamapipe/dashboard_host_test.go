package main

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The dashboard without credentials (loopback) answers loopback Hosts and
// --allow-host names only: a DNS-rebinding page gets 421.
func TestDashboardWithoutCredentialsChecksHost(t *testing.T) {
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	t.Setenv(envDashboardPassword, "")
	t.Setenv(envDashboardToken, "")
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// DB 7 is the dashboard tests'; this test only reads it.
		done <- dashboardRoot(&stdout, &stderr).Run(ctx, []string{"llamapipe", "--redis-url", "redis://" + addr + "/7",
			"dashboard", "--listen", "127.0.0.1:0", "--allow-host", "dash.internal"})
	}()
	urlRe := regexp.MustCompile(`dashboard on http://(127\.0\.0\.1:\d+)/`)
	var hostport string
	for deadline := time.Now().Add(20 * time.Second); hostport == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(stdout.String()); m != nil {
			hostport = m[1]
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
	port := hostport[strings.LastIndex(hostport, ":")+1:]
	for host, want := range map[string]int{
		hostport:                  200,
		"localhost:" + port:       200,
		"dash.internal":           200,
		"evil.example:" + port:    http.StatusMisdirectedRequest,
		"attacker.example":        http.StatusMisdirectedRequest,
		"localhost:" + port + "1": http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequest("GET", "http://"+hostport+"/", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, res.StatusCode, want)
		}
		if res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("Host %s: X-Frame-Options %q", host, res.Header.Get("X-Frame-Options"))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dashboard after cancel: %v", err)
	}
}
