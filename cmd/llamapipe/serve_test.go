package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// serveRoot is the app with only the serve command (and the global flags).
func serveRoot(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{Name: "llamapipe", Flags: globalFlags(), Writer: stdout, ErrWriter: stderr,
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Commands:       []*cli.Command{serveCommand(stdout, stderr)}}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestServeRefusesToStartWithoutTokens(t *testing.T) {
	t.Setenv(envAPITokens, "")
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(emptyFile, []byte("# none yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badFile, []byte("secret-token-without-tenant\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goodFile := filepath.Join(dir, "good")
	if err := os.WriteFile(goodFile, []byte("tok acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--allow", dir}, "no bearer tokens"},
		{[]string{"serve", "--allow", dir, "--tokens-file", emptyFile}, "no bearer tokens"},
		{[]string{"serve", "--allow", dir, "--tokens-file", badFile}, "TOKEN TENANT"},
		{[]string{"serve", "--allow", dir, "--tokens-file", filepath.Join(dir, "missing")}, "--tokens-file"},
		{[]string{"serve", "--tokens-file", goodFile}, "--allow"},
	} {
		var stderr bytes.Buffer
		err := serveRoot(io.Discard, &stderr).Run(context.Background(), append([]string{"llamapipe"}, c.args...))
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(ee.msg, c.want) {
			t.Errorf("%v: %v, want a usage error containing %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error()+stderr.String(), "secret-token") {
			t.Errorf("%v: a token appears in the error: %v", c.args, err)
		}
	}
}

func TestServeStartsAndStopsOnLoopback(t *testing.T) {
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	const token = "tok-5d1f08c2"
	t.Setenv(envAPITokens, token+" acme\n")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// DB 8 is the API tests'; this test only reads it.
		done <- serveRoot(&stdout, &stderr).Run(ctx, []string{"llamapipe", "--redis-url", "redis://" + addr + "/8",
			"--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--allow", t.TempDir()})
	}()
	urlRe := regexp.MustCompile(`api on (http://127\.0\.0\.1:\d+)/v1/`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", stderr.String())
		}
	}
	get := func(path, tok string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := get("/v1/batches", ""); code != http.StatusUnauthorized {
		t.Errorf("/v1/batches without a token = %d, want 401", code)
	}
	if code := get("/v1/batches", token); code != http.StatusOK {
		t.Errorf("/v1/batches with the token = %d, want 200", code)
	}
	if code := get("/v1/openapi.yaml", ""); code != http.StatusOK {
		t.Errorf("/v1/openapi.yaml = %d, want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
	if strings.Contains(stderr.String()+stdout.String(), token) {
		t.Error("the token appears in the output")
	}
	if _, err := http.Get(base + "/v1/openapi.yaml"); err == nil {
		t.Error("the server still answers after it stopped")
	}
}

// TestAPIProfilesWireWorkerEstimate: the API's profiles are the workers'
// (for "") or a named one, each with worker/estimate's estimator.
func TestAPIProfilesWireWorkerEstimate(t *testing.T) {
	resolve := apiProfiles(llm.Profile{}, nil, estimate.Options{})
	workers, err := resolve("")
	if err != nil || workers.Name != llm.ProviderOffline || workers.BatchAPI || workers.NoDocuments != nil || workers.Estimator == nil {
		t.Errorf("workers' profile %+v (%v): want offline, no batch API, documents allowed", workers, err)
	}
	groq, err := resolve("groq")
	if err != nil || groq.Name != "groq" || !groq.BatchAPI {
		t.Errorf("groq %+v (%v): want a batch API", groq, err)
	}
	if _, ok := groq.Estimator.(*estimate.Estimator); !ok {
		t.Errorf("estimator %T, want *estimate.Estimator", groq.Estimator)
	}
	if _, err := resolve("no-such-profile"); err == nil {
		t.Error("unknown profile resolved")
	}
}
