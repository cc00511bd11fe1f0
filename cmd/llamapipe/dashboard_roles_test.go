package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDashboardCommandServesRoles runs `llamapipe dashboard` with
// --dashboard-users and --dashboard-api-tokens: each login gets its role
// (an admin opens asynqmon, a tenant login and an API token get 403 there),
// and no secret reaches the output.
func TestDashboardCommandServesRoles(t *testing.T) {
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	t.Setenv(envDashboardPassword, "")
	t.Setenv(envDashboardToken, "")
	dir := t.TempDir()
	users, tokens := filepath.Join(dir, "users"), filepath.Join(dir, "tokens")
	if err := os.WriteFile(users, []byte("ada admin sec-admin-51c2\ntina tenant:acme sec-tina-77d0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("sec-api-0b3e acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// DB 7 is the dashboard tests'; this test only reads it.
		done <- dashboardRoot(&stdout, &stderr).Run(ctx, []string{"llamapipe", "--redis-url", "redis://" + addr + "/7",
			"--log-format", "json", "dashboard", "--listen", "127.0.0.1:0", "--dashboard-users", users, "--dashboard-api-tokens", tokens})
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
	get := func(path string, auth func(*http.Request)) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		auth(req)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	for _, c := range []struct {
		who, path string
		auth      func(*http.Request)
		want      int
	}{
		{"admin", "/asynq/", basic("ada", "sec-admin-51c2"), 200},
		{"admin", "/", basic("ada", "sec-admin-51c2"), 200},
		{"tenant", "/", basic("tina", "sec-tina-77d0"), 200},
		{"tenant", "/asynq/", basic("tina", "sec-tina-77d0"), 403},
		{"API token", "/", bearer("sec-api-0b3e"), 200},
		{"API token", "/metrics", bearer("sec-api-0b3e"), 403},
		{"nobody", "/", func(*http.Request) {}, 401},
	} {
		if code := get(c.path, c.auth); code != c.want {
			t.Errorf("%s GET %s = %d, want %d", c.who, c.path, code, c.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dashboard after cancel: %v", err)
	}
	if out := stderr.String() + stdout.String(); strings.Contains(out, "sec-") {
		t.Errorf("a secret appears in the output: %s", out)
	}
	if !strings.Contains(stderr.String(), `"users":3`) {
		t.Errorf("log does not count the 3 logins: %s", stderr.String())
	}
}
