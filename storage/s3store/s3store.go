package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/internal/iox"
)

// DefaultRegion is used when neither Config.Region nor the SDK's environment
// and shared configuration name a region.
const DefaultRegion = "us-east-1"

// Config configures the S3 client. The zero value talks to AWS S3 with the
// SDK's default credential chain and region resolution.
type Config struct {
	// Endpoint is the base URL of the S3 API, e.g. "http://127.0.0.1:9000"
	// for MinIO. Empty: the SDK resolves it (AWS_ENDPOINT_URL_S3 or
	// AWS_ENDPOINT_URL when set, else AWS's endpoint for the region).
	Endpoint string
	// Region is the signing region. Empty: AWS_REGION / AWS_DEFAULT_REGION or
	// the shared profile; DefaultRegion ("us-east-1") when nothing sets it.
	Region string
	// PathStyle addresses buckets as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY. MinIO and most S3-compatible services need it.
	// Default false (virtual-hosted style, as AWS prefers).
	PathStyle bool
	// AccessKey and SecretKey are static credentials. Both empty (the
	// default): the SDK's default chain (environment, shared profile, web
	// identity / IRSA, ECS and EC2 instance roles). Setting only one is an
	// error.
	AccessKey, SecretKey string
	// PartSize is the multipart upload part size in bytes. Zero or anything
	// below 5 MiB means 5 MiB, S3's minimum. Objects bigger than one part are
	// uploaded as a multipart upload; one upload buffers up to about six
	// parts in memory.
	PartSize int64
	// MaxAttempts is how many times the SDK tries one request, retrying
	// transient failures with backoff. Zero: the SDK default (3).
	MaxAttempts int
}

// Store is a storage.Store over an S3 bucket and key prefix. It is safe for
// concurrent use.
type Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or "a/b/" (trailing slash)
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Presigner = (*Store)(nil)
)

// Open builds an S3 client from cfg and the SDK's default configuration
// (config.LoadDefaultConfig) and returns a Store for bucket/prefix. It does
// not contact S3: a missing bucket shows on first use (see EnsureBucket).
func Open(ctx context.Context, bucket, prefix string, cfg Config) (*Store, error) {
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, fmt.Errorf("s3store: open s3://%s: access key and secret key must be given together", bucket)
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if cfg.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(cfg.MaxAttempts))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: open s3://%s: load AWS config: %w", bucket, err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Range reads and S3-compatible stores often carry no checksum; the
		// SDK would log that on every GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return New(client, bucket, prefix, cfg.PartSize)
}

// New returns a Store using an existing client. partSize is as
// Config.PartSize.
func New(client *s3.Client, bucket, prefix string, partSize int64) (*Store, error) {
	if bucket == "" {
		return nil, fmt.Errorf("s3store: no bucket")
	}
	p := strings.Trim(prefix, "/")
	if p != "" {
		c, err := storage.CleanKey(p)
		if err != nil {
			return nil, fmt.Errorf("s3store: open s3://%s/%s: prefix: %w", bucket, prefix, err)
		}
		p = c + "/"
	}
	if partSize < manager.MinUploadPartSize {
		partSize = manager.MinUploadPartSize
	}
	//lint:ignore SA1019 manager is deprecated for transfermanager, which is still v0.x.
	up := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.ClientOptions = append(u.ClientOptions, retryRacedPut)
	})
	return &Store{client: client, uploader: up, bucket: bucket, prefix: p}, nil
}

// retryRacedPut lets the SDK's retryer try an upload's requests again when
// they answer AccessDenied or NoSuchKey. A single-drive MinIO (the one
// docker-compose ships) removes a folder once its last object is deleted;
// a PutObject landing in that folder at the same moment fails its final
// rename, which MinIO reports as AccessDenied (or NoSuchKey), although the
// same request succeeds a moment later (minio/minio#15157). Workers write
// and delete side by side in one folder (batch request lines, chunk work
// objects), so that race is ours to absorb. A real AccessDenied costs the
// retries (MaxAttempts) and still fails, as a permanent error.
func retryRacedPut(o *s3.Options) {
	o.Retryer = retry.AddWithErrorCodes(o.Retryer, "AccessDenied", "NoSuchKey")
}

// Client returns the S3 client.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the key prefix ("" or ending in "/").
func (s *Store) Prefix() string { return s.prefix }

// Location returns s3://bucket/prefix.
func (s *Store) Location() string {
	return storage.Location{Scheme: "s3", Bucket: s.bucket, Prefix: strings.TrimSuffix(s.prefix, "/")}.String()
}

// Error is the error every S3 operation returns. It unwraps to the SDK's
// error, and to storage.ErrNotExist or storage.ErrInvalidRange where those
// apply.
type Error struct {
	Op  string // "get", "put", "stat", "list", "delete", "ensure bucket", "presign"
	URL string // s3://bucket/key of the object (or prefix)
	Err error
}

func (e *Error) Error() string { return "s3store: " + e.Op + " " + e.URL + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether retrying the operation later may succeed:
// connection failures, timeouts, 5xx, throttling (SlowDown, ...). See
// storage.IsTransient.
func (e *Error) Transient() bool { return isTransient(e.Err) }

func isTransient(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, storage.ErrNotExist), errors.Is(err, storage.ErrInvalidRange):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// The SDK's own classifiers, as its standard retryer uses them.
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary ||
		retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// isNotExist reports S3's "no such object" answers: GetObject's NoSuchKey and
// HeadObject's bare 404 (NotFound).
func isNotExist(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

func isInvalidRange(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

func (s *Store) url(key string) string { return "s3://" + s.bucket + "/" + key }

// fail wraps err for op on the full object key.
func (s *Store) fail(op, fullKey string, err error) error {
	switch {
	case isNotExist(err):
		err = fmt.Errorf("%w: %w", storage.ErrNotExist, err)
	case isInvalidRange(err):
		err = fmt.Errorf("%w: %w", storage.ErrInvalidRange, err)
	default:
		err = permanent(op, s.url(fullKey), len(fullKey), err)
	}
	return &Error{Op: op, URL: s.url(fullKey), Err: err}
}

// permanent marks the S3 answers that retrying cannot heal (the SDK has
// retried them already where that made sense, see retryRacedPut) as a
// storage.PermanentError with a reason a person can act on; other errors
// are returned as they are.
func permanent(op, url string, keyLen int, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	switch code := apiErr.ErrorCode(); code {
	case "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccountProblem":
		access := "read"
		if op == "put" || op == "delete" {
			access = "write"
		}
		return storage.Permanent(fmt.Sprintf("access denied (S3 %s) to %s: give the credentials %s access", code, url, access),
			fmt.Errorf("%w: %w", storage.ErrAccessDenied, err))
	case "KeyTooLongError":
		return storage.Permanent(fmt.Sprintf("name too long (%d bytes; the limit is 1024 bytes per S3 key)", keyLen),
			fmt.Errorf("%w: %w", storage.ErrNameTooLong, err))
	case "InvalidBucketName", "NoSuchBucket":
		return storage.Permanent(fmt.Sprintf("bucket of %s: %s (S3 %s)", url, apiErr.ErrorMessage(), code), err)
	}
	return err
}

func (s *Store) key(key string) (string, error) {
	k, err := storage.CleanKey(key)
	if err != nil {
		return "", err
	}
	return s.prefix + k, nil
}

// MaxPresignTTL is the longest lifetime S3 accepts for a presigned URL
// (SigV4: seven days).
const MaxPresignTTL = 7 * 24 * time.Hour

// PresignGet returns a presigned GET URL of key, valid for ttl (1s to
// MaxPresignTTL). It is computed locally from the credentials (no request
// is sent) and carries a signature: never log it. The object need not
// exist yet.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", fmt.Errorf("s3store: presign: %w", err)
	}
	if ttl < time.Second || ttl > MaxPresignTTL {
		return "", &Error{Op: "presign", URL: s.url(k), Err: fmt.Errorf("lifetime %v is outside [1s, %v]", ttl, MaxPresignTTL)}
	}
	req, err := s3.NewPresignClient(s.client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.fail("presign", k, err)
	}
	return req.URL, nil
}

// Get opens an object, or the part of it that rng names (HTTP Range).
func (s *Store) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, fmt.Errorf("s3store: get: %w", err)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}
	if rng != nil && (rng.Offset != 0 || rng.Length > 0) {
		if rng.Offset < 0 {
			return nil, s.fail("get", k, fmt.Errorf("%w: offset %d", storage.ErrInvalidRange, rng.Offset))
		}
		if rng.Length > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.Offset+rng.Length-1))
		} else {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", rng.Offset))
		}
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.fail("get", k, err)
	}
	return &body{ReadCloser: out.Body, s: s, key: k}, nil
}

// body wraps read errors (a dropped connection, a cancelled context) with
// the object's URL.
type body struct {
	io.ReadCloser
	s   *Store
	key string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.fail("read", b.key, err)
	}
	return n, err
}

// Put uploads an object with the SDK's upload manager: one PutObject when it
// fits in a part, a multipart upload otherwise. S3 makes the object visible
// only once the upload completes. When size >= 0 and r yields a different
// number of bytes, the upload is abandoned.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("s3store: put: %w", err)
	}
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k), Body: iox.Exact(r, size)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := s.uploader.Upload(ctx, in); err != nil {
		return s.fail("put", k, err)
	}
	return nil
}

// Stat returns an object's size, ETag (without quotes) and modification time
// from HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3store: stat: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return storage.ObjectInfo{}, s.fail("stat", k, err)
	}
	return storage.ObjectInfo{
		Key:      strings.TrimPrefix(k, s.prefix),
		Size:     aws.ToInt64(out.ContentLength),
		ETag:     strings.Trim(aws.ToString(out.ETag), `"`),
		Modified: aws.ToTime(out.LastModified),
	}, nil
}

// Delete removes an object. S3 answers success for a missing key.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return fmt.Errorf("s3store: delete: %w", err)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil && !isNotExist(err) {
		return s.fail("delete", k, err)
	}
	return nil
}

// List yields the objects whose keys start with prefix in lexical order,
// fetching them with ListObjectsV2, PageSize keys per request. A
// non-recursive listing uses the delimiter "/" and yields S3's common
// prefixes as IsPrefix entries (keys ending in "/").
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		p, err := storage.CleanPrefix(prefix)
		if err != nil {
			yield(storage.ObjectInfo{}, fmt.Errorf("s3store: list: %w", err))
			return
		}
		pageSize := opts.PageSize
		if pageSize <= 0 || pageSize > 1000 {
			pageSize = 1000
		}
		in := &s3.ListObjectsV2Input{
			Bucket:  aws.String(s.bucket),
			Prefix:  aws.String(s.prefix + p),
			MaxKeys: aws.Int32(int32(pageSize)),
		}
		if opts.StartAfter != "" {
			in.StartAfter = aws.String(s.prefix + opts.StartAfter)
		}
		if !opts.Recursive {
			in.Delimiter = aws.String("/")
		}
		pages := s3.NewListObjectsV2Paginator(s.client, in)
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			if err != nil {
				yield(storage.ObjectInfo{}, s.fail("list", s.prefix+p, err))
				return
			}
			for _, info := range s.mergePage(out) {
				// S3 may return a common prefix containing StartAfter.
				if info.Key <= opts.StartAfter {
					continue
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// mergePage returns one page's objects and common prefixes in key order.
func (s *Store) mergePage(out *s3.ListObjectsV2Output) []storage.ObjectInfo {
	infos := make([]storage.ObjectInfo, 0, len(out.Contents)+len(out.CommonPrefixes))
	objs, prefixes := out.Contents, out.CommonPrefixes
	for len(objs) > 0 || len(prefixes) > 0 {
		if len(prefixes) == 0 || (len(objs) > 0 && aws.ToString(objs[0].Key) < aws.ToString(prefixes[0].Prefix)) {
			o := objs[0]
			objs = objs[1:]
			infos = append(infos, storage.ObjectInfo{
				Key:      strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
				Size:     aws.ToInt64(o.Size),
				ETag:     strings.Trim(aws.ToString(o.ETag), `"`),
				Modified: aws.ToTime(o.LastModified),
			})
			continue
		}
		cp := prefixes[0]
		prefixes = prefixes[1:]
		infos = append(infos, storage.ObjectInfo{Key: strings.TrimPrefix(aws.ToString(cp.Prefix), s.prefix), IsPrefix: true})
	}
	return infos
}

// EnsureBucket creates the bucket when it does not exist yet. An existing
// bucket owned by the caller is fine.
func (s *Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	if !isBucketMissing(err) {
		return &Error{Op: "ensure bucket", URL: "s3://" + s.bucket, Err: err}
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if region := s.client.Options().Region; region != "" && region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return &Error{Op: "ensure bucket", URL: "s3://" + s.bucket, Err: err}
	}
	return nil
}

func isBucketMissing(err error) bool {
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	if errors.As(err, &nf) || errors.As(err, &nsb) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchBucket") {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
