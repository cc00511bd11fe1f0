package feedfetch

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func server(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	img := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1}, 100)...)
	var flaky atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/img.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 07 Dec 2026 01:00:00 GMT")
		_, _ = w.Write(img)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/img.png", http.StatusFound) })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/slow.png", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(bytes.Repeat([]byte{2}, 5000))
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html></html>"))
	})
	mux.HandleFunc("/flaky.png", func(w http.ResponseWriter, r *http.Request) {
		if flaky.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &flaky
}

func TestGet(t *testing.T) {
	s, flaky := server(t)
	f := New(Config{AllowPrivate: true, Timeout: 300 * time.Millisecond, MaxBytes: 1000, Backoff: time.Millisecond})
	ctx := context.Background()

	res, err := f.Get(ctx, s.URL+"/moved")
	if err != nil || res.ETag != `"v1"` || res.LastModified == "" || !bytes.HasPrefix(res.Data, []byte("\x89PNG")) {
		t.Fatalf("redirected image: %+v, %v", res, err)
	}
	if _, err := f.Get(ctx, s.URL+"/flaky.png"); err != nil || flaky.Load() != 3 {
		t.Errorf("two 503s then the image: err %v after %d requests", err, flaky.Load())
	}
	for path, want := range map[string]string{
		"/missing.png": "HTTP 404 Not Found",
		"/loop":        "more than 5 redirects",
		"/slow.png":    "no answer within 300ms",
		"/big.png":     "over the 1000-byte limit",
		"/page":        `content type "text/html" is not an image`,
	} {
		_, err := f.Get(ctx, s.URL+path)
		var fe *Error
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
		if path != "/slow.png" && (fe == nil || !fe.Permanent) {
			t.Errorf("%s: %v should be permanent", path, err)
		}
	}
}

// Without AllowPrivate, a URL on a loopback address (the test server) is
// refused at dial time, permanently, and nothing is retried.
func TestPrivateAddressRefused(t *testing.T) {
	s, _ := server(t)
	var hits atomic.Int32
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	f := New(Config{Backoff: time.Millisecond})
	for _, u := range []string{s.URL + "/img.png", strings.Replace(s.URL, "127.0.0.1", "localhost", 1) + "/img.png"} {
		_, err := f.Get(context.Background(), u)
		var fe *Error
		if !errors.Is(err, ErrRefused) || !errors.As(err, &fe) || !fe.Permanent || !strings.Contains(err.Error(), "--feed-allow-private") {
			t.Errorf("%s: %v, want a permanent refusal", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the server was reached %d times", hits.Load())
	}
	for _, a := range []string{"10.0.0.1:80", "169.254.169.254:80", "[::1]:80", "[fe80::1]:80", "100.64.1.1:80", "0.0.0.0:80", "[::ffff:192.168.1.1]:80"} {
		if err := guard(a, false); !errors.Is(err, ErrRefused) {
			t.Errorf("guard(%s) = %v", a, err)
		}
	}
	if err := guard("93.184.216.34:443", false); err != nil {
		t.Errorf("a public address refused: %v", err)
	}
}
