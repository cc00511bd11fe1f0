package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v3"
	"golang.org/x/term"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/storage/s3store"
)

// conn is the process's Redis: the asynq connection option and a client for
// batch records, made from the same URL.
type conn struct {
	opt     asynq.RedisConnOpt
	rdb     redis.UniversalClient
	tracker *jobs.Tracker
	stop    func()
	enq     *asynq.Client
}

// client is the process's asynq client, made on first use.
func (c *conn) client() *asynq.Client {
	if c.enq == nil {
		c.enq = asynq.NewClient(c.opt)
	}
	return c.enq
}

func (c *conn) Close() {
	if c.enq != nil {
		_ = c.enq.Close()
	}
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
	if c.stop != nil {
		c.stop()
	}
}

// connect opens the Redis named by --redis-url. When it is empty and private
// is true, it starts a private redis-server for this process (the
// single-machine `run`).
func connect(ctx context.Context, cmd *cli.Command, private bool, stderr io.Writer) (*conn, error) {
	url := cmd.String("redis-url")
	var stop func()
	if url == "" {
		if !private {
			return nil, &exitError{code: exitUsage, msg: "no Redis: set --redis-url or LLAMAPIPE_REDIS_URL (e.g. redis://localhost:6379/0)"}
		}
		var err error
		url, stop, err = startPrivateRedis(ctx, stderr)
		if err != nil {
			return nil, err
		}
	}
	opt, err := jobs.ParseRedisURL(url)
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--redis-url: %v", jobs.RedactURL(err.Error(), url))}
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		if stop != nil {
			stop()
		}
		return nil, fmt.Errorf("redis: unsupported connection type %T", opt)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		if stop != nil {
			stop()
		}
		return nil, fmt.Errorf("redis at %s is not reachable: %w", jobs.RedactURL(url, url), err)
	}
	return &conn{opt: opt, rdb: rdb, tracker: jobs.NewTracker(rdb, ""), stop: stop}, nil
}

// startPrivateRedis runs redis-server on a free loopback port in a temporary
// folder, for the lifetime of this process.
func startPrivateRedis(ctx context.Context, stderr io.Writer) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, &exitError{code: exitFailed, msg: "no --redis-url given and no redis-server on PATH: install Redis (Debian: apt-get install redis-server) or point --redis-url at one"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "llamapipe-redis-")
	if err != nil {
		return "", nil, fmt.Errorf("private redis: %w", err)
	}
	c := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := c.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
		_ = os.RemoveAll(dir)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		if nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = nc.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, errors.New("private redis-server did not start within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "llamapipe: started a private redis-server on %s for this run\n", addr)
	return "redis://" + addr + "/0", stop, nil
}

// opener returns the storage opener configured by the global flags.
func opener(cmd *cli.Command) func(ctx context.Context, location string) (storage.Store, error) {
	cfg := backends.Config{S3: s3store.Config{
		Endpoint:  cmd.String("s3-endpoint"),
		Region:    cmd.String("s3-region"),
		PathStyle: cmd.Bool("s3-path-style"),
	}}
	return func(ctx context.Context, location string) (storage.Store, error) {
		return backends.Open(ctx, location, cfg)
	}
}

// readSecretMap reads a JSON object of strings (e.g. PDF passwords) from a
// file, never echoing its content in errors.
func readSecretMap(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	raw := map[string]*string{}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object of strings (content not shown)", path)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		if v != nil { // null: password unknown
			m[k] = *v
		}
	}
	return m, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
