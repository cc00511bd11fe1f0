//go:build unix

package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptedRunStopsWorkerBeforeRedis: Ctrl-C at the terminal (SIGINT
// to the whole foreground process group) while `run` is in a model call.
// run stops its worker first and its private redis-server last, so stderr
// has no "connection refused" from a worker talking to a Redis already
// gone, and the exit status is 130.
func TestInterruptedRunStopsWorkerBeforeRedis(t *testing.T) {
	bin := buildBinary(t)
	inCall := make(chan struct{}, 16)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inCall <- struct{}{}
		select { // hold the call until the worker gives up on it
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	defer model.Close()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("A lease between A and B."), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", src, "--out", t.TempDir(), "--shutdown-timeout", "1s", "--log-level", "info")
	cmd.Env = append(os.Environ(), "LLAMAPIPE_REDIS_URL=", "LLAMAPIPE_PROVIDER=openai", "LLAMAPIPE_BASE_URL="+model.URL+"/v1",
		"LLAMAPIPE_MODEL=llama-4-scout", "LLAMAPIPE_API_KEY=k")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a shell job
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inCall:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the run never called the model: %s", stderr.String())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil { // the whole group, as a terminal does
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCanceled {
		t.Errorf("exit %v, want %d", err, exitCanceled)
	}
	if s := stderr.String(); strings.Contains(s, "connection refused") {
		t.Errorf("the worker outlived its Redis:\n%s", s)
	}
}
