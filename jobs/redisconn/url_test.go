package redisconn_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
)

func TestRedisURLs(t *testing.T) {
	opt, err := redisconn.ParseURL("rediss-cluster://:s3cret@10.0.0.1:6379,10.0.0.2:6379")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := opt.(asynq.RedisClusterClientOpt)
	if !ok || len(c.Addrs) != 2 || c.Password != "s3cret" || c.TLSConfig == nil {
		t.Fatalf("cluster option %#v", opt)
	}
	if _, err := redisconn.ParseURL("redis-cluster://"); err == nil {
		t.Error("a cluster URL without addresses was accepted")
	}
	opt, err = redisconn.ParseURL("redis-sentinel://:pw@s1:26379,s2:26379?master=mymaster")
	if f, ok := opt.(asynq.RedisFailoverClientOpt); err != nil || !ok || f.MasterName != "mymaster" || len(f.SentinelAddrs) != 2 {
		t.Fatalf("sentinel option %#v, %v", opt, err)
	}
	opt, err = redisconn.ParseURL("rediss://:pw@redis.example:6380/2")
	if r, ok := opt.(asynq.RedisClientOpt); err != nil || !ok || r.DB != 2 || r.TLSConfig == nil {
		t.Fatalf("TLS option %#v, %v", opt, err)
	}
	if msg := redisconn.RedactURL("dial redis://:hunter2@h:6379/0 failed", "redis://:hunter2@h:6379/0"); strings.Contains(msg, "hunter2") {
		t.Errorf("password not redacted: %s", msg)
	}
}

func TestDial(t *testing.T) {
	ctx := context.Background()
	_, _, err := redisconn.Dial(ctx, "redis://:hunter2@h:notaport/0")
	var ue *redisconn.URLError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a bad URL: %v, want a *URLError without the password", err)
	}
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	opt, rdb, err := redisconn.Dial(ctx, "redis://"+addr+"/"+strconv.Itoa(jobstest.DBJobs))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := opt.(asynq.RedisClientOpt); !ok {
		t.Errorf("option %T, want asynq.RedisClientOpt", opt)
	}
	// Nothing listens on port 1: not reachable, and the password not shown.
	if _, _, err := redisconn.Dial(ctx, "redis://:hunter2@127.0.0.1:1/0"); err == nil || strings.Contains(err.Error(), "hunter2") || errors.As(err, &ue) {
		t.Errorf("an unreachable Redis: %v", err)
	}
}
