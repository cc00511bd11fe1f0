package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/s3store"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker/llm/dashscope/dashscopetest"
)

const dashTransportKey = "sk-dash-transport-test-0123456789"

// dashRun runs `llamapipe run` over three corpus photos into an s3://
// output with DashScope's preset against fake, and returns the manifest
// entries, the output store and stdout + stderr.
func dashRun(t *testing.T, fake *dashscopetest.Server, extra ...string) ([]jobs.Entry, *s3store.Store, string, redis.UniversalClient) {
	t.Helper()
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	st := storagetest.NewS3Store(t, "")
	cfg := storagetest.S3Config(t)
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	t.Setenv("DASHSCOPE_API_KEY", dashTransportKey)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	src := t.TempDir()
	for _, f := range jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[:3] {
		if err := os.WriteFile(filepath.Join(src, filepath.Base(f)), jobstest.ReadFile(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--redis-url", url, "--s3-endpoint", cfg.Endpoint, "--s3-path-style", "--s3-region", "us-east-1", "--log-level", "debug",
		"run", src, "--out", "s3://" + st.Bucket() + "/out", "--preset", "dashscope", "--base-url", srv.URL, "--concurrency", "2", "--max-retry", "1"}, extra...)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 && code != exitFailed {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rc, err := st.Get(context.Background(), "out/"+jobs.ManifestKey, nil)
	if err != nil {
		t.Fatalf("manifest: %v\n%s", err, stderr)
	}
	defer rc.Close()
	var es []jobs.Entry
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		var e jobs.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es, st, stdout + stderr, rdb
}

// noSignature fails when any object of st, any Redis value (task payloads,
// batch records) or the command's output carries a presigned URL's
// signature; and when a prepared image was left in the work area.
func noSignature(t *testing.T, st storage.Store, rdb redis.UniversalClient, output string) {
	t.Helper()
	ctx := context.Background()
	const sig = "X-Amz-Signature"
	if strings.Contains(output, sig) {
		t.Errorf("the command's output carries a signature:\n%s", output)
	}
	for info, err := range st.List(ctx, "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(info.Key, "/image.jpg") {
			t.Errorf("prepared image left in the work area: %s", info.Key)
			continue
		}
		rc, err := st.Get(ctx, info.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(b, []byte(sig)) {
			t.Errorf("%s carries a signature", info.Key)
		}
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var vals []string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		}
		for _, v := range vals {
			if strings.Contains(v, sig) {
				t.Errorf("Redis key %s carries a signature", k)
			}
		}
	}
}

// `run --preset dashscope --image-transport url` into an s3:// output:
// the fake service fetches every prepared image from MinIO by its
// presigned URL, every item is done once in the manifest, and no
// signature is left anywhere.
func TestRunDashScopeImagesByURL(t *testing.T) {
	fake := dashscopetest.New(dashscopetest.Options{APIKey: dashTransportKey, MaxSide: 1344})
	es, st, output, rdb := dashRun(t, fake, "--image-transport", "url")
	seen := map[string]int{}
	for _, e := range es {
		seen[e.Source]++
		if e.Status != jobs.StatusDone {
			t.Errorf("%s: %s %q", e.Source, e.Status, e.Error)
		}
	}
	if len(es) != 3 || len(seen) != 3 {
		t.Fatalf("manifest %+v: want 3 items, each once", es)
	}
	imgs := fake.Images()
	if len(imgs) != 3 {
		t.Fatalf("the service got %d images, want 3", len(imgs))
	}
	for _, img := range imgs {
		if !img.ByURL || max(img.Width, img.Height) > 1344 || img.Width == 0 {
			t.Errorf("image %+v: want fetched by URL, prepared to at most 1344 px", img)
		}
	}
	noSignature(t, st, rdb, output)
}

// failFetch is the fake service's network when it cannot reach the
// storage endpoint.
type failFetch struct{}

func (failFetch) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp: connect: network is unreachable")
}

// A service that cannot fetch the URLs fails each item once, with a
// reason saying what to do and no signature.
func TestRunDashScopeURLUnreachable(t *testing.T) {
	fake := dashscopetest.New(dashscopetest.Options{APIKey: dashTransportKey, Client: &http.Client{Transport: failFetch{}}})
	es, st, output, rdb := dashRun(t, fake)
	if len(es) != 3 {
		t.Fatalf("manifest %+v: want 3 items", es)
	}
	for _, e := range es {
		if e.Status != jobs.StatusFailed || !strings.Contains(e.Error, "Download the media resource failed") ||
			!strings.Contains(e.Error, "--image-transport inline") || !strings.Contains(e.Error, "?[REDACTED]") {
			t.Errorf("%s: %s %q, want failed with the service's reason and what to do", e.Source, e.Status, e.Error)
		}
	}
	noSignature(t, st, rdb, output)
}

// --image-transport url to a local folder is refused before anything is
// queued; the DashScope preset alone falls back to inline there, and plan
// says which.
func TestImageTransportURLNeedsAnS3Output(t *testing.T) {
	url, rdb := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.jpg"), jobstest.ReadFile(t, jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", out, "--preset", "dashscope", "--image-transport", "url")
	if code != exitUsage || !strings.Contains(stderr, "--image-transport url") || !strings.Contains(stderr, "s3://") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if ids, _ := jobs.NewTracker(rdb, "").List(context.Background(), 0); len(ids) != 0 {
		t.Errorf("a batch was created: %v", ids)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", out, "--preset", "groq", "--image-transport", "url"); code != exitUsage ||
		!strings.Contains(stderr, "only the dashscope provider") {
		t.Errorf("groq with url: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", out, "--preset", "dashscope"); code != 0 {
		t.Errorf("the preset's default refused a local output: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "plan", src, "--out", out, "--preset", "dashscope")
	if code != 0 || !strings.Contains(stdout, "Images: inline (base64)") {
		t.Errorf("plan: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI(t, "plan", src, "--out", out, "--preset", "groq"); code != 0 || strings.Contains(stdout, "presigned") {
		t.Errorf("plan for groq speaks of URLs:\n%s", stdout)
	}
}
