// Package jobstest gives tests a private Redis database on the test Redis
// that `make test` starts (see .ci/with-services).
package jobstest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs/redisconn"
)

// Databases used by each package's tests, so packages tested in parallel
// never see each other's queues.
const (
	DBJobs   = 1
	DBIngest = 2
	DBWorker = 3
	DBCmd    = 4
	// 5 and 6: cmd/llamapipe's bench and fault tests.
	DBBench     = 5
	DBFaults    = 6
	DBDashboard = 7
	// 11: worker/finalize (its manifests tests).
	// 12: jobs/tenants.
	DBTenants = 12
	// 13: jobs/spill.
	DBSpill = 13
	// 14: ingest/watch (its MinIO event list is in database 0, where
	// MinIO's Redis notification target writes).
	DBWatch   = 14
	DBMetrics = 15
)

// Redis returns a redis:// URL for database db of the test Redis, and a
// client on it. The database is flushed first and after the test.
func Redis(t testing.TB, db int) (string, redis.UniversalClient) {
	t.Helper()
	addr := os.Getenv("LLAMAPIPE_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("no test Redis (LLAMAPIPE_TEST_REDIS_ADDR): run the tests with `make test`")
	}
	url := fmt.Sprintf("redis://%s/%d", addr, db)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush test Redis db %d: %v", db, err)
	}
	t.Cleanup(func() {
		_ = rdb.FlushDB(context.Background()).Err()
		_ = rdb.Close()
	})
	return url, rdb
}

// ConnOpt parses a Redis URL (any redisconn.ParseURL takes: Sentinel and
// Cluster too) into an asynq connection option.
func ConnOpt(t testing.TB, url string) asynq.RedisConnOpt {
	t.Helper()
	opt, err := redisconn.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// S3 returns the test MinIO's endpoint and credentials.
func S3(t testing.TB) (endpoint, access, secret string) {
	t.Helper()
	endpoint = os.Getenv("LLAMAPIPE_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Fatal("no test MinIO (LLAMAPIPE_TEST_S3_ENDPOINT): run the tests with `make test`")
	}
	return endpoint, os.Getenv("LLAMAPIPE_TEST_S3_ACCESS_KEY"), os.Getenv("LLAMAPIPE_TEST_S3_SECRET_KEY")
}

// Bucket makes a bucket name from a test name (lowercase, 3-63 chars).
func Bucket(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 50 {
		s = s[:50]
	}
	return "t-" + strings.Trim(s, "-")
}

// SentinelURL returns the redis-sentinel:// URL of the test Sentinel group
// (a primary, a replica, three sentinels: see .ci/with-services) and the
// folder holding its data nodes' config and pid files. It fails the test
// when `make test` did not start the group.
func SentinelURL(t testing.TB) (url, dir string) {
	t.Helper()
	url, dir = os.Getenv("LLAMAPIPE_TEST_SENTINEL_URL"), os.Getenv("LLAMAPIPE_TEST_SENTINEL_DIR")
	if url == "" || dir == "" {
		t.Fatal("no test Sentinel group (LLAMAPIPE_TEST_SENTINEL_URL, _DIR): run the tests with `make test`")
	}
	return url, dir
}

// ClusterURL returns the redis-cluster:// URL of the test Redis Cluster
// (three primaries: see .ci/with-services). It fails the test when `make
// test` did not start it. The cluster has one database, shared by every
// package's tests: a test uses its own key prefix and queue names.
func ClusterURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("LLAMAPIPE_TEST_CLUSTER_URL")
	if url == "" {
		t.Fatal("no test Redis Cluster (LLAMAPIPE_TEST_CLUSTER_URL): run the tests with `make test`")
	}
	return url
}
