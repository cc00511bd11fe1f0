//go:build unix

package localredis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs/localredis"
)

// TestCtrlCLeavesTheServerToStop: a Ctrl-C at the terminal sends SIGINT to
// the whole foreground process group. The private server must not get it,
// so `run` can stop its workers before the server (no "connection refused"
// from workers that still talk to it). The test runs itself in a process
// group of its own, sends SIGINT to that group and asks the server.
func TestCtrlCLeavesTheServerToStop(t *testing.T) {
	if os.Getenv("LOCALREDIS_SIGINT_CHILD") == "1" {
		sigintChild(t)
		return
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on PATH: run the tests with `make test`")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCtrlCLeavesTheServerToStop$", "-test.v")
	cmd.Env = append(os.Environ(), "LOCALREDIS_SIGINT_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "server answered after SIGINT") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func sigintChild(t *testing.T) {
	s, err := localredis.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	got := make(chan os.Signal, 1)
	signal.Notify(got, os.Interrupt)
	defer signal.Stop(got)
	if err := syscall.Kill(0, syscall.SIGINT); err != nil { // our whole process group, as a terminal does
		t.Fatal(err)
	}
	<-got
	// redis-server shuts down at its next cron tick (100 ms) after a
	// SIGINT: keep asking for a second, well past it.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := ping(s.Addr); err != nil {
			t.Fatalf("the server died of the group's SIGINT: %v", err)
		}
	}
	t.Log("server answered after SIGINT")
}

func ping(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "+PONG") {
		return fmt.Errorf("PING: %q %v", buf[:n], err)
	}
	return nil
}
