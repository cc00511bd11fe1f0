package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/storage/s3store"
)

// NoServices is the message tests fail with when the test services are not
// configured.
const NoServices = "no test Redis/MinIO: run the tests with `make test`"

// TestPartSize is the multipart part size the S3 helpers use: S3's minimum,
// so that the suite's large objects really go multipart.
const TestPartSize = 5 << 20

// NewLocalStore returns a Store over a fresh t.TempDir().
func NewLocalStore(t testing.TB) *localstore.Store {
	t.Helper()
	s, err := localstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// S3Config returns the configuration of the test MinIO, from
// LLAMAPIPE_TEST_S3_ENDPOINT, LLAMAPIPE_TEST_S3_ACCESS_KEY and
// LLAMAPIPE_TEST_S3_SECRET_KEY, with path-style addressing and
// TestPartSize. It fails the test when they are not set.
func S3Config(t testing.TB) s3store.Config {
	t.Helper()
	cfg := s3store.Config{
		Endpoint:  os.Getenv("LLAMAPIPE_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("LLAMAPIPE_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("LLAMAPIPE_TEST_S3_SECRET_KEY"),
		Region:    "us-east-1",
		PathStyle: true,
		PartSize:  TestPartSize,
	}
	if cfg.Endpoint == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		t.Fatal(NoServices)
	}
	return cfg
}

// BucketName returns a valid, unique S3 bucket name derived from the test's
// name.
func BucketName(t testing.TB) string {
	var b strings.Builder
	b.WriteString("lp-")
	dash := true
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 45 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	if !dash {
		b.WriteByte('-')
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// NewS3Store creates a fresh bucket on the test MinIO, named after the test,
// and returns a Store for it under prefix. The bucket and everything in it
// are removed when the test ends.
func NewS3Store(t testing.TB, prefix string) *s3store.Store {
	t.Helper()
	cfg := S3Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := BucketName(t)
	s, err := s3store.Open(ctx, bucket, prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveBucket(t, s.Client(), bucket) })
	return s
}

// RemoveBucket deletes every object and unfinished multipart upload in
// bucket, then the bucket. Failures are test errors.
func RemoveBucket(t testing.TB, client *s3.Client, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			t.Errorf("remove bucket %s: list: %v", bucket, err)
			return
		}
		if len(out.Contents) == 0 {
			continue
		}
		del := &types.Delete{Quiet: aws.Bool(true)}
		for _, o := range out.Contents {
			del.Objects = append(del.Objects, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: del}); err != nil {
			t.Errorf("remove bucket %s: delete objects: %v", bucket, err)
			return
		}
	}
	ups, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Errorf("remove bucket %s: list uploads: %v", bucket, err)
		return
	}
	for _, u := range ups.Uploads {
		if _, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId}); err != nil {
			t.Errorf("remove bucket %s: abort upload: %v", bucket, err)
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("remove bucket %s: %v", bucket, err)
	}
}
