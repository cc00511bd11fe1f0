package dashscope

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/dashscope/dashscopetest"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

const testSig = "X-Amz-Signature=5f1c0ffee0ddba11deadbeef5f1c0ffee0ddba11deadbeef"

// imageHost serves img's bytes at /bucket/img.jpg to a request carrying
// testSig, as a presigned store would, and 403 to any other.
func imageHost(t *testing.T, img *llm.Image) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bucket/img.jpg" || !strings.Contains(r.URL.RawQuery, testSig) {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(img.Data)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fake(t *testing.T) (*dashscopetest.Server, *httptest.Server) {
	t.Helper()
	f := dashscopetest.New(dashscopetest.Options{APIKey: testKey})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// An image with Presign goes as the URL it returns (presigned for the
// client's lifetime, right before the call); the service fetches it.
func TestImageByURL(t *testing.T) {
	f, srv := fake(t)
	img := llmtest.JPEG(t, 64, 48)
	host := imageHost(t, img)
	var asked []time.Duration
	img.Presign = func(_ context.Context, ttl time.Duration) (string, error) {
		asked = append(asked, ttl)
		return host.URL + "/bucket/img.jpg?X-Amz-Expires=600&" + testSig, nil
	}
	c := client(t, srv.URL, 5*time.Second)
	resp, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "caption"}, {Image: img}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Text, `"title":"White mug"`) {
		t.Errorf("answer %q", resp.Text)
	}
	got := f.Images()
	if len(got) != 1 || !got[0].ByURL || got[0].Width != 64 || got[0].Height != 48 || got[0].URL != host.URL+"/bucket/img.jpg" {
		t.Fatalf("the service received %+v, want the 64x48 image fetched from its URL", got)
	}
	if len(asked) != 1 || asked[0] != MinImageURLLifetime {
		t.Errorf("presigned %v, want once for %v (5s timeout + margin is under the floor)", asked, MinImageURLLifetime)
	}
	if d := ImageURLLifetime(10 * time.Minute); d != 12*time.Minute {
		t.Errorf("ImageURLLifetime(10m) = %v, want the timeout + 2m", d)
	}
	// Without Presign the same image goes inline.
	img.Presign = nil
	if _, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "caption"}, {Image: img}}}); err != nil {
		t.Fatal(err)
	}
	if got := f.Images(); len(got) != 2 || got[1].ByURL {
		t.Errorf("second image %+v: want a data URI", got[len(got)-1])
	}
}

// A URL the service cannot fetch fails the call as permanent, with what to
// do, and its signature appears nowhere in the error, though the
// service's message quoted the whole URL.
func TestImageURLRefusalHidesSignature(t *testing.T) {
	f, srv := fake(t)
	img := llmtest.JPEG(t, 16, 16)
	host := imageHost(t, img)
	u := host.URL + "/bucket/img.jpg?X-Amz-Credential=AKIAEXAMPLEKEY0000%2F20261207%2Fus-east-1&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000"
	img.Presign = func(context.Context, time.Duration) (string, error) { return u, nil }
	c := client(t, srv.URL, 5*time.Second)
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "caption"}, {Image: img}}})
	e := llmtest.Kind(t, err, llm.Permanent)
	if f.Calls() != 1 || e.Status != http.StatusBadRequest {
		t.Fatalf("calls %d, status %d", f.Calls(), e.Status)
	}
	msg := err.Error()
	for _, secret := range []string{"0000000000000000000000000000000000000000", "AKIAEXAMPLEKEY0000", "X-Amz-Signature="} {
		if strings.Contains(msg, secret) {
			t.Errorf("error shows %q: %s", secret, msg)
		}
	}
	for _, want := range []string{"Download the media resource failed", host.URL + "/bucket/img.jpg?[REDACTED]", "presigned URL", "--image-transport inline"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// A URL that cannot be presigned fails the call before anything is sent,
// as retryable.
func TestPresignFailure(t *testing.T) {
	f, srv := fake(t)
	img := llmtest.JPEG(t, 16, 16)
	img.Presign = func(context.Context, time.Duration) (string, error) { return "", errors.New("no credentials") }
	c := client(t, srv.URL, 5*time.Second)
	_, err := c.Complete(context.Background(), llm.Request{Parts: []llm.Part{{Text: "caption"}, {Image: img}}})
	if e := llmtest.Kind(t, err, llm.Retryable); e.Code != "presign" || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("error %v", err)
	}
	if f.Calls() != 0 {
		t.Error("the request was sent without its image")
	}
}

func TestHideURLs(t *testing.T) {
	u := "https://b.s3.amazonaws.com/k.jpg?X-Amz-Date=20261207T000000Z&X-Amz-Security-Token=FwoGZXIvYXdzEJr%2F%2F%2FtokenTOKEN&X-Amz-Signature=abcdef0123456789abcdef"
	for _, s := range []string{
		"cannot fetch " + u,
		"cannot fetch https://b.s3.amazonaws.com/k.jpg?X-Amz-Date=20261207T000000Z&X-Amz-Security-Token=FwoGZXIvYXdzEJr///tokenTOKEN&X-Amz-Signature=abcdef0123456789abcdef",
		"signature abcdef0123456789abcdef does not match",
		"token FwoGZXIvYXdzEJr///tokenTOKEN expired",
	} {
		got := hideURLs(s, []string{u})
		if strings.Contains(got, "abcdef0123456789abcdef") || strings.Contains(got, "tokenTOKEN") {
			t.Errorf("hideURLs(%q) = %q", s, got)
		}
	}
}
