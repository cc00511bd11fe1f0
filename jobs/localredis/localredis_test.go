package localredis_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/localredis"
)

func TestStartAndStop(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on PATH: run the tests with `make test`")
	}
	s, err := localredis.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		s.Stop()
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	_ = c.Close()
	if s.URL != "redis://"+s.Addr+"/0" {
		t.Errorf("URL %q", s.URL)
	}
	s.Stop()
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		_ = c.Close()
		t.Error("the server still answers after Stop")
	}
}

func TestNoServerOnPath(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := localredis.Start(context.Background()); !errors.Is(err, localredis.ErrNoServer) {
		t.Errorf("Start without redis-server: %v, want ErrNoServer", err)
	}
}
