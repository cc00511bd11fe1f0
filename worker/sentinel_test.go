package worker_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// sentinelGroup is the Sentinel group `make test` starts: its sentinels,
// the master name they monitor and the folder of its data nodes' config
// and pid files (.ci/with-services).
type sentinelGroup struct {
	t         *testing.T
	url, dir  string
	master    string
	sentinels []string
}

func newSentinelGroup(t *testing.T) *sentinelGroup {
	url, dir := jobstest.SentinelURL(t)
	opt, err := redisconn.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	f := opt.(redisconn.FailoverOpt).Options
	return &sentinelGroup{t: t, url: url, dir: dir, master: f.MasterName, sentinels: f.SentinelAddrs}
}

// primary asks each sentinel in turn for the primary's address.
func (g *sentinelGroup) primary() (string, error) {
	var last error
	for _, s := range g.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		a, err := sc.GetMasterAddrByName(ctx, g.master).Result()
		cancel()
		_ = sc.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", last
}

// waitReady waits until the group can fail over: every sentinel sees the
// primary up and the two other sentinels, and a replica the sentinels
// know of is in sync with the primary (asked of the replica itself: the
// sentinels refresh what they know of replicas only every 10s).
func (g *sentinelGroup) waitReady() {
	g.t.Helper()
	var why string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		why = ""
		replicas := map[string]bool{}
		primary := ""
		for _, s := range g.sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s, MaxRetries: -1})
			m, err := sc.Master(context.Background(), g.master).Result()
			var rs []map[string]string
			if err == nil {
				rs, err = sc.Replicas(context.Background(), g.master).Result()
			}
			_ = sc.Close()
			for _, r := range rs {
				replicas[net.JoinHostPort(r["ip"], r["port"])] = true
			}
			switch {
			case err != nil:
				why = s + ": " + err.Error()
			case m["flags"] != "master" || m["num-other-sentinels"] != "2":
				why = s + ": primary " + m["flags"] + ", other sentinels " + m["num-other-sentinels"]
			case primary != "" && primary != m["port"]:
				why = "the sentinels disagree on the primary"
			}
			primary = m["port"]
		}
		synced := false
		for r := range replicas {
			c := redis.NewClient(&redis.Options{Addr: r, MaxRetries: -1})
			info, _ := c.Info(context.Background(), "replication").Result()
			_ = c.Close()
			synced = synced || (strings.Contains(info, "role:slave") && strings.Contains(info, "master_port:"+primary+"\r") &&
				strings.Contains(info, "master_link_status:up"))
		}
		if why == "" && !synced {
			why = "no replica in sync with the primary"
		}
		if why == "" {
			return
		}
	}
	g.t.Fatalf("the Sentinel group is not ready to fail over: %s", why)
}

// kill SIGKILLs the data node at addr (by its pid file).
func (g *sentinelGroup) kill(addr string) {
	g.t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	b, err := os.ReadFile(filepath.Join(g.dir, "redis-"+port+".pid"))
	if err != nil {
		g.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		g.t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		g.t.Fatalf("kill primary %s (pid %d): %v", addr, pid, err)
	}
}

// restart starts the data node at addr again with its config file; the
// sentinels turn it into a replica of the new primary.
func (g *sentinelGroup) restart(addr string) {
	g.t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(os.Getenv("LLAMAPIPE_TEST_REDIS_SERVER"), filepath.Join(g.dir, "redis-"+port+".conf")).CombinedOutput()
	if err != nil {
		g.t.Fatalf("restart %s: %v: %s", addr, err, out)
	}
}

// TestSentinelFailoverMidBatch runs a batch with two workers connected
// through redis-sentinel://, SIGKILLs the primary mid-batch and checks that
// the batch completes on the promoted replica with every item in the
// manifest exactly once and the counters right. The killed node is
// started again and rejoins as a replica, so the group is whole for the
// tests after this one.
func TestSentinelFailoverMidBatch(t *testing.T) {
	g := newSentinelGroup(t)
	t0 := time.Now()
	g.waitReady()
	t.Logf("the group was ready to fail over after %s", time.Since(t0).Round(time.Millisecond))
	opt := jobstest.ConnOpt(t, g.url)
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, url: g.url, tracker: jobs.NewTracker(rdb, ""),
		open: func(ctx context.Context, loc string) (storage.Store, error) {
			return backends.Open(ctx, loc, backends.Config{})
		}}
	src, outDir := t.TempDir(), t.TempDir()
	putTextInputs(t, restartItems, func(key string, data []byte) {
		if err := os.WriteFile(filepath.Join(src, key), data, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	old, err := g.primary()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, MaxRetry: 10}})
	model := &slowModel{Client: offline.New(offline.Options{}), delay: 100 * time.Millisecond}
	e.startLoggedWorker(model, 3)
	e.startWorker(model, 3) // a second worker process

	waitDone(t, e.tracker, res.BatchID, 5)
	waitCallInFlight(t, model)
	g.kill(old)
	killed := time.Now()
	var promoted string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p, err := g.primary(); err == nil && p != old {
			promoted = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover 30s after the primary %s was killed", old)
		}
	}
	t.Logf("primary %s killed; %s promoted after %s", old, promoted, time.Since(killed).Round(time.Millisecond))
	g.restart(old)

	waitFinalized(t, e.tracker, e.url, res.BatchID, 3*time.Minute)
	t.Logf("batch finalized %s after the kill, %s in all", time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	out, _ := e.open(context.Background(), outDir)
	es := readManifest(t, out)
	checkAllDoneOnce(t, es, out, e.retriesSeen())
	var in, outTok int64
	for _, x := range es {
		in, outTok = in+int64(x.InputTokens), outTok+int64(x.OutputTokens)
	}
	c, err := e.tracker.Counts(context.Background(), res.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != restartItems || c.Done != restartItems || c.Failed+c.Skipped+c.Cancelled != 0 {
		t.Errorf("counts %+v, want %d done of %d", c, restartItems, restartItems)
	}
	// Each item's tokens counted once: the counters are the manifest's sums.
	if c.InputTokens == 0 || c.InputTokens != in || c.OutputTokens != outTok {
		t.Errorf("counts %+v: tokens %d in, %d out, the manifest's sum %d, %d", c, c.InputTokens, c.OutputTokens, in, outTok)
	}
	// The group is whole again: the old primary follows the new one.
	t0 = time.Now()
	g.waitReady()
	t.Logf("the group was whole again %s later", time.Since(t0).Round(time.Millisecond))
}
