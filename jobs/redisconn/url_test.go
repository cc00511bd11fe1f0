package redisconn_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
)

// Our URL syntax, pinned: operators' configurations hold these strings.
func TestRedisURLs(t *testing.T) {
	opt, err := redisconn.ParseURL("rediss-cluster://:s3cret@10.0.0.1:6379,10.0.0.2:6379")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := opt.(redisconn.ClusterOpt)
	if !ok || !slices.Equal(c.Options.Addrs, []string{"10.0.0.1:6379", "10.0.0.2:6379"}) || c.Options.Password != "s3cret" ||
		c.Options.TLSConfig == nil || c.Options.TLSConfig.ServerName != "" {
		t.Fatalf("cluster option %#v", opt)
	}
	if _, err := redisconn.ParseURL("redis-cluster://"); err == nil {
		t.Error("a cluster URL without addresses was accepted")
	}
	// The query's options are kept (they used to be dropped); a port
	// defaults to 6379; /0 is the one database a cluster has.
	opt, err = redisconn.ParseURL("redis-cluster://u:pw@h1,h2:7001,h3:7002/0?pool_size=7&read_timeout=2s&dial_timeout=3&max_redirects=5")
	if err != nil {
		t.Fatal(err)
	}
	c = opt.(redisconn.ClusterOpt)
	if o := c.Options; !slices.Equal(o.Addrs, []string{"h1:6379", "h2:7001", "h3:7002"}) || o.Username != "u" || o.Password != "pw" ||
		o.PoolSize != 7 || o.ReadTimeout != 2*time.Second || o.DialTimeout != 3*time.Second || o.MaxRedirects != 5 || o.TLSConfig != nil {
		t.Errorf("cluster options %+v", o)
	}
	for _, bad := range []string{
		"redis-cluster://h1:7000/3",            // a cluster has database 0 only
		"redis-cluster://h1:7000?bogus=1",      // unknown option
		"redis-cluster://h1:7000?pool_size=x",  // bad value
		"redis-cluster://h1:7000?addr=h2:7001", // addresses go before the path
		"redis-sentinel://s1:26379",            // no master name
		"redis-sentinel://s1:26379?master=m&pool_size=-x",
	} {
		if _, err := redisconn.ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}

	// Sentinel: the userinfo's password is the sentinels' (as asynq had
	// it), password= the primary's.
	opt, err = redisconn.ParseURL("redis-sentinel://:pw@s1:26379,s2:26379?master=mymaster")
	if f, ok := opt.(redisconn.FailoverOpt); err != nil || !ok || f.Options.MasterName != "mymaster" ||
		!slices.Equal(f.Options.SentinelAddrs, []string{"s1:26379", "s2:26379"}) || f.Options.SentinelPassword != "pw" || f.Options.Password != "" {
		t.Fatalf("sentinel option %#v, %v", opt, err)
	}
	opt, err = redisconn.ParseURL("rediss-sentinel://s1,[::1]:26380/2?master=m&password=dbpw&dial_timeout=4s&pool_size=9&skip_verify=true")
	if err != nil {
		t.Fatal(err)
	}
	if o := opt.(redisconn.FailoverOpt).Options; !slices.Equal(o.SentinelAddrs, []string{"s1:26379", "[::1]:26380"}) || o.DB != 2 ||
		o.Password != "dbpw" || o.DialTimeout != 4*time.Second || o.PoolSize != 9 || o.TLSConfig == nil || !o.TLSConfig.InsecureSkipVerify {
		t.Errorf("sentinel options %+v", o)
	}

	opt, err = redisconn.ParseURL("rediss://:pw@redis.example:6380/2")
	if r, ok := opt.(asynq.RedisClientOpt); err != nil || !ok || r.DB != 2 || r.TLSConfig == nil {
		t.Fatalf("TLS option %#v, %v", opt, err)
	}
	if msg := redisconn.RedactURL("dial redis://:hunter2@h:6379/0 failed", "redis://:hunter2@h:6379/0"); strings.Contains(msg, "hunter2") {
		t.Errorf("password not redacted: %s", msg)
	}
	u := "redis-sentinel://:sent1@s1:26379?master=m&password=hunter2"
	if msg := redisconn.RedactURL(u, u); strings.Contains(msg, "hunter2") || strings.Contains(msg, "sent1") || !strings.Contains(msg, "master=m") {
		t.Errorf("passwords not redacted: %s", msg)
	}
}

// The URLs of the Sentinel group and the Cluster `make test` starts dial,
// and asynq works through them: a task enqueued on the cluster is found by
// asynq's Inspector in the slot of its queue's hash tag.
func TestDialSentinelAndCluster(t *testing.T) {
	ctx := context.Background()
	surl, _ := jobstest.SentinelURL(t)
	// The failover test (package worker) may be replacing the primary right
	// now: give the sentinels time to name the new one.
	var (
		rdb  redis.UniversalClient
		err  error
		opt  asynq.RedisConnOpt
		role string
	)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if opt, rdb, err = redisconn.Dial(ctx, surl); err == nil {
			var r []any
			if r, err = rdb.Do(ctx, "ROLE").Slice(); err == nil && len(r) > 0 {
				role, _ = r[0].(string)
			}
			_ = rdb.Close()
		}
		if (err == nil && role == "master") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || role != "master" {
		t.Fatalf("sentinel URL %s: role %q, %v", surl, role, err)
	}
	if _, ok := opt.(redisconn.FailoverOpt); !ok {
		t.Errorf("sentinel option %T", opt)
	}

	curl := jobstest.ClusterURL(t)
	opt, rdb, err = redisconn.Dial(ctx, curl)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster client %T", rdb)
	}
	queue := "redisconn-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	client := asynq.NewClient(opt)
	defer client.Close()
	info, err := client.Enqueue(asynq.NewTask("redisconn:test", nil), asynq.Queue(queue))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	t.Cleanup(func() { _ = insp.DeleteQueue(queue, true) })
	got, err := insp.GetTaskInfo(queue, info.ID)
	if err != nil || got.State != asynq.TaskStatePending {
		t.Fatalf("task on the cluster: %+v, %v", got, err)
	}
	slot, err := insp.ClusterKeySlot(queue)
	if err != nil {
		t.Fatalf("asynq does not see a cluster: %v", err)
	}
	if want := rdb.ClusterKeySlot(ctx, "asynq:{"+queue+"}:pending").Val(); slot != want {
		t.Errorf("asynq puts queue %s in slot %d, its pending list is in %d", queue, slot, want)
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
