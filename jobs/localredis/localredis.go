// Package localredis starts a private redis-server for one process: the
// single-machine `llamapipe run` and `llamapipe bench` when no Redis URL is
// given. The server listens on a free loopback port, keeps nothing on disk
// and is gone after Stop.
//
// It imports no other project package.
package localredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ErrNoServer is Start's error when no redis-server is on PATH.
var ErrNoServer = errors.New("no redis-server on PATH")

// Server is a running private redis-server.
type Server struct {
	// URL is its redis:// URL (database 0); Addr its host:port.
	URL, Addr string
	cmd       *exec.Cmd
	dir       string
}

// Start runs redis-server on a free loopback port in a temporary folder and
// waits up to 10s for it to accept connections.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoServer
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "llamapipe-redis-")
	if err != nil {
		return nil, fmt.Errorf("private redis: %w", err)
	}
	c := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	detach(c)
	if err := c.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{URL: "redis://" + addr + "/0", Addr: addr, cmd: c, dir: dir}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = nc.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, errors.New("private redis-server did not start within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server and removes its folder.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_, _ = s.cmd.Process.Wait()
	_ = os.RemoveAll(s.dir)
}
