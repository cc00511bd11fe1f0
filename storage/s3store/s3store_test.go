package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/s3store"
	"github.com/llamapipe/llamapipe/storage/storagetest"
)

func TestSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return storagetest.NewS3Store(t, "") })
}

// Keys are relative to the Store's prefix, and a prefixed Store sees nothing
// outside its prefix.
func TestPrefix(t *testing.T) {
	whole := storagetest.NewS3Store(t, "")
	cfg := storagetest.S3Config(t)
	ctx := t.Context()
	pre, err := s3store.Open(ctx, whole.Bucket(), "/runs/7/", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pre.Location(), "s3://"+whole.Bucket()+"/runs/7"; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	for _, k := range []string{"runs/7x", "runs/70/a", "outside"} {
		if err := whole.Put(ctx, k, strings.NewReader(k), -1, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := pre.Put(ctx, "out/a.json", strings.NewReader("{}"), 2, "application/json"); err != nil {
		t.Fatal(err)
	}
	if info, err := whole.Stat(ctx, "runs/7/out/a.json"); err != nil || info.Size != 2 {
		t.Errorf("object under the prefix: %+v, %v", info, err)
	}
	if info, err := pre.Stat(ctx, "out/a.json"); err != nil || info.Key != "out/a.json" {
		t.Errorf("Stat through the prefixed store = %+v, %v", info, err)
	}
	var got []string
	for info, err := range pre.List(ctx, "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.Key)
	}
	if !slices.Equal(got, []string{"out/a.json"}) {
		t.Errorf("prefixed List = %q, want [out/a.json]", got)
	}
	got = got[:0]
	for info, err := range pre.List(ctx, "", storage.ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.Key)
	}
	if !slices.Equal(got, []string{"out/"}) {
		t.Errorf("prefixed non-recursive List = %q, want [out/]", got)
	}
	if _, err := pre.Stat(ctx, "../outside"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Stat(../outside) = %v, want ErrInvalidKey", err)
	}
}

func TestEnsureBucketIdempotent(t *testing.T) {
	s := storagetest.NewS3Store(t, "") // creates the bucket
	if err := s.EnsureBucket(t.Context()); err != nil {
		t.Errorf("EnsureBucket on an existing bucket: %v", err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1, ""); err != nil {
		t.Fatal(err)
	}
}

// isolate keeps the developer's AWS configuration out of a test.
func isolate(t *testing.T) {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/aws/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestOpenConfig(t *testing.T) {
	isolate(t)
	ctx := t.Context()
	s, err := s3store.Open(ctx, "b", "", s3store.Config{AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Client().Options().Region; got != s3store.DefaultRegion {
		t.Errorf("default region = %q, want %q", got, s3store.DefaultRegion)
	}
	t.Setenv("AWS_REGION", "eu-west-3")
	s, err = s3store.Open(ctx, "b", "p", s3store.Config{AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Client().Options().Region; got != "eu-west-3" {
		t.Errorf("region from AWS_REGION = %q", got)
	}
	s, err = s3store.Open(ctx, "b", "p", s3store.Config{Region: "ap-south-1", AccessKey: "a", SecretKey: "s", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if o := s.Client().Options(); o.Region != "ap-south-1" || !o.UsePathStyle {
		t.Errorf("explicit region/path style not applied: %q %v", o.Region, o.UsePathStyle)
	}
	if _, err := s3store.Open(ctx, "b", "", s3store.Config{AccessKey: "only-half"}); err == nil {
		t.Error("Open with an access key but no secret key: no error")
	}
	if _, err := s3store.Open(ctx, "b", "a/../../x", s3store.Config{}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Open with prefix a/../../x = %v, want ErrInvalidKey", err)
	}
	if _, err := s3store.Open(ctx, "", "", s3store.Config{}); err == nil {
		t.Error("Open without a bucket: no error")
	}
}

// fakeS3 answers every request with status and an S3 XML error with code
// (no body for HEAD, like S3), counting requests.
func fakeS3(t *testing.T, status int, code string) (*s3store.Store, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		writeS3Error(w, r, status, code)
	}))
	t.Cleanup(srv.Close)
	return openAt(t, srv.URL, 2), &n
}

// writeS3Error answers with status and S3's XML error body naming code
// (no body for HEAD, like S3).
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>fake</Message><RequestId>1</RequestId></Error>`)
	}
}

func openAt(t *testing.T, endpoint string, attempts int) *s3store.Store {
	t.Helper()
	isolate(t)
	s, err := s3store.Open(t.Context(), "bucket", "pre", s3store.Config{
		Endpoint: endpoint, PathStyle: true, AccessKey: "a", SecretKey: "s", MaxAttempts: attempts,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestErrorMapping(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name      string
		status    int
		code      string
		call      func(s *s3store.Store) error
		notExist  bool
		badRange  bool
		transient bool
		attempts  int32 // requests the server must see (MaxAttempts is 2)
	}{
		{"get NoSuchKey", 404, "NoSuchKey", getErr, true, false, false, 1},
		{"head NotFound", 404, "", statErr, true, false, false, 1},
		{"get InvalidRange", 416, "InvalidRange", func(s *s3store.Store) error {
			_, err := s.Get(ctx, "k", &storage.Range{Offset: 10})
			return err
		}, false, true, false, 1},
		{"get AccessDenied", 403, "AccessDenied", getErr, false, false, false, 1},
		// An upload answered AccessDenied is tried again (MinIO's folder
		// race, see TestPutRetriesRacedAccessDenied), but stays permanent.
		{"put AccessDenied", 403, "AccessDenied", putErr, false, false, false, 2},
		{"stat 403", 403, "", statErr, false, false, false, 1},
		{"put KeyTooLongError", 400, "KeyTooLongError", putErr, false, false, false, 1},
		{"get SlowDown", 503, "SlowDown", getErr, false, false, true, 2},
		{"put InternalError", 500, "InternalError", putErr, false, false, true, 2},
		{"list SlowDown", 503, "SlowDown", listErr, false, false, true, 2},
		{"delete ServiceUnavailable", 503, "ServiceUnavailable", func(s *s3store.Store) error { return s.Delete(ctx, "k") }, false, false, true, 2},
		{"head 503", 503, "", statErr, false, false, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, n := fakeS3(t, tc.status, tc.code)
			err := tc.call(s)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(%v, ErrNotExist) = %v", err, got)
			}
			if got := errors.Is(err, storage.ErrInvalidRange); got != tc.badRange {
				t.Errorf("errors.Is(%v, ErrInvalidRange) = %v", err, got)
			}
			if got := storage.IsTransient(err); got != tc.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tc.transient)
			}
			if !strings.Contains(err.Error(), "s3://bucket/pre/k") {
				t.Errorf("error %q does not name the object", err)
			}
			if strings.Contains(err.Error(), "\"s\"") {
				t.Errorf("error %q may contain the secret", err)
			}
			// Answers that retrying cannot heal are permanent, with a
			// reason a person can act on.
			wantPermanent := tc.code == "AccessDenied" || tc.code == "KeyTooLongError"
			if got := storage.IsPermanent(err); got != wantPermanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, wantPermanent)
			}
			if tc.code == "AccessDenied" && (!errors.Is(err, storage.ErrAccessDenied) || !strings.Contains(storage.PermanentReason(err), "give the credentials ")) {
				t.Errorf("AccessDenied: %v, want ErrAccessDenied with an actionable reason", err)
			}
			if tc.code == "KeyTooLongError" && !errors.Is(err, storage.ErrNameTooLong) {
				t.Errorf("KeyTooLongError: %v, want ErrNameTooLong", err)
			}
			if got := n.Load(); got != tc.attempts {
				t.Errorf("server saw %d requests, want %d", got, tc.attempts)
			}
		})
	}
}

func getErr(s *s3store.Store) error {
	_, err := s.Get(context.Background(), "k", nil)
	return err
}

func statErr(s *s3store.Store) error {
	_, err := s.Stat(context.Background(), "k")
	return err
}

func putErr(s *s3store.Store) error {
	return s.Put(context.Background(), "k", bytes.NewReader([]byte("x")), 1, "")
}

func listErr(s *s3store.Store) error {
	for _, err := range s.List(context.Background(), "k", storage.ListOptions{}) {
		return err
	}
	return nil
}

// A server that is not there is a transient failure.
func TestConnectionRefusedIsTransient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := openAt(t, "http://"+addr, 1)
	_, err = s.Stat(t.Context(), "k")
	if err == nil {
		t.Fatal("Stat against a closed port: no error")
	}
	if !storage.IsTransient(err) {
		t.Errorf("IsTransient(%v) = false", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("connection failure reported as ErrNotExist: %v", err)
	}
}

// Objects bigger than PartSize go up as multipart uploads (S3's ETag of a
// multipart object ends in "-<parts>").
func TestMultipart(t *testing.T) {
	s := storagetest.NewS3Store(t, "")
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16) // 12 MiB
	if err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "small", bytes.NewReader(data[:1<<20]), 1<<20, ""); err != nil {
		t.Fatal(err)
	}
	big, err := s.Stat(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(big.ETag, "-3") {
		t.Errorf("12 MiB object with 5 MiB parts has ETag %q, want a 3-part multipart ETag", big.ETag)
	}
	small, err := s.Stat(ctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(small.ETag, "-") {
		t.Errorf("1 MiB object has multipart ETag %q", small.ETag)
	}
}

// AWS S3 returns a common prefix that contains StartAfter ("a/" for
// StartAfter "a/b"); List must not yield it, so that resuming with the last
// key seen never repeats an entry. (MinIO already leaves it out.)
func TestListFiltersPrefixBeforeStartAfter(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>pre/</Prefix>
<StartAfter>pre/a/b</StartAfter><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>
<Contents><Key>pre/b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"abc"</ETag><Size>3</Size></Contents>
<CommonPrefixes><Prefix>pre/a/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>pre/ab/</Prefix></CommonPrefixes>
</ListBucketResult>`)
	}))
	t.Cleanup(srv.Close)
	s := openAt(t, srv.URL, 1)
	var got []string
	for info, err := range s.List(t.Context(), "", storage.ListOptions{StartAfter: "a/b"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.Key)
		if info.Key == "b" && (info.ETag != "abc" || info.Size != 3) {
			t.Errorf("object entry %+v", info)
		}
	}
	if want := []string{"ab/", "b"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for _, part := range []string{"start-after=pre%2Fa%2Fb", "delimiter=%2F", "prefix=pre%2F", "list-type=2"} {
		if !strings.Contains(query, part) {
			t.Errorf("request query %q lacks %q", query, part)
		}
	}
}

// A single-drive MinIO answers a PutObject that races the removal of its
// (just emptied) folder with AccessDenied or NoSuchKey, and the same request
// succeeds a moment later: Put tries again and succeeds, with the whole body.
func TestPutRetriesRacedAccessDenied(t *testing.T) {
	for code, status := range map[string]int{"AccessDenied": 403, "NoSuchKey": 404} {
		t.Run(code, func(t *testing.T) {
			var puts atomic.Int32
			var body atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPut {
					http.Error(w, "unexpected", http.StatusBadRequest)
					return
				}
				if puts.Add(1) == 1 {
					writeS3Error(w, r, status, code)
					return
				}
				body.Store(string(b))
				w.Header().Set("ETag", `"abc"`)
			}))
			t.Cleanup(srv.Close)
			s := openAt(t, srv.URL, 3)
			if err := s.Put(t.Context(), "race/k", strings.NewReader("payload"), 7, "text/plain"); err != nil {
				t.Fatalf("Put after one raced answer: %v", err)
			}
			if got := puts.Load(); got != 2 {
				t.Errorf("server saw %d PUTs, want 2", got)
			}
			if got, _ := body.Load().(string); !strings.Contains(got, "payload") {
				t.Errorf("the retried PUT carried %q, want the object's bytes", got)
			}
		})
	}
}

// A presigned GET URL fetches the object without credentials; the same URL
// with its signature changed, or after its lifetime, is refused by the
// server; a lifetime outside what S3 accepts is refused before any request.
func TestPresignGet(t *testing.T) {
	st := storagetest.NewS3Store(t, "runs")
	ctx := t.Context()
	want := []byte("the prepared image")
	if err := st.Put(ctx, ".llamapipe/work/b/i/image.jpg", bytes.NewReader(want), int64(len(want)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignGet(ctx, ".llamapipe/work/b/i/image.jpg", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "/runs/.llamapipe/work/b/i/image.jpg?") || !strings.Contains(u, "X-Amz-Signature=") {
		t.Fatalf("presigned URL %q: want the prefixed key and a signature", u)
	}
	get := func(u string) (int, []byte) {
		t.Helper()
		res, err := http.Get(u) // no credentials: only the URL's signature
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if code, b := get(u); code != http.StatusOK || !bytes.Equal(b, want) {
		t.Fatalf("GET presigned URL: %d %q", code, b)
	}
	i := strings.Index(u, "X-Amz-Signature=") + len("X-Amz-Signature=")
	tampered := u[:i] + strings.Repeat("0", 8) + u[i+8:]
	if code, _ := get(tampered); code != http.StatusForbidden {
		t.Errorf("GET with a changed signature: %d, want 403", code)
	}
	short, err := st.PresignGet(ctx, ".llamapipe/work/b/i/image.jpg", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // past the URL's lifetime (S3 counts whole seconds)
	if code, b := get(short); code != http.StatusForbidden || !strings.Contains(string(b), "expired") {
		t.Errorf("GET after the lifetime: %d %s, want 403 (expired)", code, b)
	}
	for _, ttl := range []time.Duration{0, 500 * time.Millisecond, s3store.MaxPresignTTL + time.Second} {
		if _, err := st.PresignGet(ctx, "a.jpg", ttl); err == nil {
			t.Errorf("lifetime %v accepted", ttl)
		}
	}
	if _, err := st.PresignGet(ctx, "../a.jpg", time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("key ../a.jpg: %v, want ErrInvalidKey", err)
	}
	var _ storage.Presigner = st
}
