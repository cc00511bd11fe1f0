package watch

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage/storagetest"
)

// fakeSQS speaks the SQS JSON protocol (AWS JSON 1.0) for ReceiveMessage
// and DeleteMessage on one queue: a message stays until it is deleted with
// its receipt handle, and is not given out again while it is in flight.
type fakeSQS struct {
	t        *testing.T
	mu       sync.Mutex
	next     int
	messages map[string]string // receipt handle → body
	inFlight map[string]bool
	deleted  []string
}

func (f *fakeSQS) add(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.messages[fmt.Sprintf("rh-%d", f.next)] = body
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.0" {
		f.t.Errorf("content type %q", ct)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		f.t.Errorf("request not signed")
	}
	var in struct {
		QueueUrl            string
		MaxNumberOfMessages int
		WaitTimeSeconds     int
		ReceiptHandle       string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.QueueUrl == "" {
		http.Error(w, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"bad request"}`, 400)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Header.Get("X-Amz-Target") {
	case "AmazonSQS.ReceiveMessage":
		if in.MaxNumberOfMessages < 1 || in.MaxNumberOfMessages > 10 || in.WaitTimeSeconds > 20 {
			f.t.Errorf("receive %+v: out of SQS's limits", in)
		}
		type msg struct{ MessageId, ReceiptHandle, Body, MD5OfBody string }
		var out struct{ Messages []msg }
		for rh, body := range f.messages {
			if f.inFlight[rh] || len(out.Messages) == in.MaxNumberOfMessages {
				continue
			}
			f.inFlight[rh] = true
			sum := md5.Sum([]byte(body))
			out.Messages = append(out.Messages, msg{MessageId: "id-" + rh, ReceiptHandle: rh, Body: body, MD5OfBody: hex.EncodeToString(sum[:])})
		}
		if len(out.Messages) == 0 {
			f.mu.Unlock()
			time.Sleep(100 * time.Millisecond) // a short long-poll
			f.mu.Lock()
		}
		_ = json.NewEncoder(w).Encode(out)
	case "AmazonSQS.DeleteMessage":
		if _, ok := f.messages[in.ReceiptHandle]; !ok {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#ReceiptHandleIsInvalid","message":"unknown receipt handle"}`)
			return
		}
		delete(f.messages, in.ReceiptHandle)
		f.deleted = append(f.deleted, in.ReceiptHandle)
		fmt.Fprint(w, `{}`)
	default:
		f.t.Errorf("unexpected action %q", r.Header.Get("X-Amz-Target"))
		w.WriteHeader(400)
	}
}

// S3 → SQS (and S3 → SNS → SQS) notifications, as AWS sends them, are
// consumed and deleted; each object is admitted once.
func TestSQSEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bucket := storagetest.NewS3Store(t, "").Bucket()
	src := e.store(t, "s3://"+bucket+"/in")
	put(t, src, "a.txt", doc(1))
	put(t, src, "b c.txt", doc(2))
	infoA, _ := src.Stat(ctx, "a.txt")
	infoB, _ := src.Stat(ctx, "b c.txt")

	fake := &fakeSQS{t: t, messages: map[string]string{}, inFlight: map[string]bool{}}
	record := func(name, key, etag string) string {
		return fmt.Sprintf(`{"eventVersion":"2.1","eventSource":"aws:s3","eventName":%q,"s3":{"s3SchemaVersion":"1.0","bucket":{"name":%q},"object":{"key":%q,"size":100,"eTag":%q}}}`,
			name, bucket, key, etag)
	}
	fake.add(`{"Records":[` + record("ObjectCreated:Put", "in/a.txt", infoA.ETag) + `]}`)
	snsBody, _ := json.Marshal(map[string]string{"Type": "Notification", "Message": `{"Records":[` + record("ObjectCreated:Put", "in/b+c.txt", infoB.ETag) + `]}`})
	fake.add(string(snsBody))
	fake.add(`{"Records":[` + record("ObjectCreated:Put", "in/a.txt", infoA.ETag) + `]}`) // a duplicate delivery
	fake.add(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"` + bucket + `"}`)
	srv := httptest.NewServer(fake)
	defer srv.Close()

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	q, err := NewSQS(ctx, "https://sqs.eu-west-1.amazonaws.com/123456789012/inbox-events", SQSOptions{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	q.WaitSeconds = 1
	w := e.watcher(t, ingest.Options{Spec: jobs.Spec{Sources: []string{"s3://" + bucket + "/in"}, Out: t.TempDir()}},
		// Listing at start finds both objects but leaves them to settle for
		// an hour; events carry no modification time and are taken at once
		// (S3 announces complete objects): the events alone add them.
		Config{Name: "sqs", Interval: time.Hour, Settle: time.Hour})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx, q) }()
	waitFor(t, "every message to be deleted", func() bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return len(fake.messages) == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, n, err := w.Current(ctx)
	if err != nil || n != 2 {
		t.Fatalf("batch holds %d items (%v), want 2: a.txt and \"b c.txt\" once each", n, err)
	}
	if len(fake.deleted) != 4 {
		t.Errorf("%d messages deleted, want 4 (the test event and the duplicate too)", len(fake.deleted))
	}
}
