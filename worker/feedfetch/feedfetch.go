// Package feedfetch fetches the image URLs of a catalog feed for the
// worker: with limits on size, time, redirects and content type, retries
// with backoff on 5xx and 429, a cap on concurrent requests per host, and
// a guard that refuses private, loopback and link-local addresses. The
// guard runs at dial time on the address actually connected to, so a
// name that resolves to a public address when checked and a private one
// when used (DNS rebinding) is still refused; redirects are dialled
// through the same guard.
//
// It knows nothing of queues, storage or images; errors say what failed
// (the HTTP status or the network error) and whether retrying later can
// help (Permanent).
package feedfetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config tunes a Fetcher. Zero fields take the defaults.
type Config struct {
	// MaxBytes caps a response body. Default 50 MiB.
	MaxBytes int64
	// Timeout bounds one attempt, body included. Default 30 s.
	Timeout time.Duration
	// MaxRedirects caps the redirects followed. Default 5.
	MaxRedirects int
	// Retries is how many times a 5xx, a 429 or a network error is tried
	// again. Default 3.
	Retries int
	// Backoff is the first wait before a retry, doubled each time (with
	// jitter; a Retry-After of up to a minute is honoured). Default 500 ms.
	Backoff time.Duration
	// PerHost caps concurrent requests to one host. Default 4.
	PerHost int
	// AllowPrivate lets requests reach private, loopback and link-local
	// addresses (a feed on the local network, tests). Default false.
	AllowPrivate bool
	// ContentTypes are the media-type prefixes accepted. Default "image/".
	ContentTypes []string
}

// Result is a fetched URL.
type Result struct {
	Data []byte
	// ETag and LastModified are the response's validators ("" if none).
	ETag, LastModified string
	ContentType        string
}

// Error is a failed fetch: Status is the HTTP status (0 for a network
// error or a refusal), Permanent whether retrying later cannot help.
type Error struct {
	URL       string
	Status    int
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("fetch %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("fetch %s: %v", e.URL, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrRefused: the address is private, loopback or link-local (and
// AllowPrivate is off), or the scheme is not http(s).
var ErrRefused = errors.New("refused address")

// Fetcher fetches URLs; safe for concurrent use.
type Fetcher struct {
	cfg    Config
	client *http.Client
	mu     sync.Mutex
	hosts  map[string]chan struct{}
}

// New returns a Fetcher with cfg's limits.
func New(cfg Config) *Fetcher {
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, 50<<20)
	cfg.Timeout = cmp.Or(cfg.Timeout, 30*time.Second)
	cfg.MaxRedirects = cmp.Or(cfg.MaxRedirects, 5)
	cfg.Retries = cmp.Or(cfg.Retries, 3)
	cfg.Backoff = cmp.Or(cfg.Backoff, 500*time.Millisecond)
	cfg.PerHost = cmp.Or(cfg.PerHost, 4)
	if len(cfg.ContentTypes) == 0 {
		cfg.ContentTypes = []string{"image/"}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		return guard(address, cfg.AllowPrivate)
	}}
	tr := &http.Transport{Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: cfg.Timeout, MaxIdleConnsPerHost: cfg.PerHost}
	f := &Fetcher{cfg: cfg, hosts: map[string]chan struct{}{}}
	f.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > cfg.MaxRedirects {
			return fmt.Errorf("%w: more than %d redirects", errPermanent, cfg.MaxRedirects)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: redirect to a %s: URL", ErrRefused, req.URL.Scheme)
		}
		return nil
	}}
	return f
}

var errPermanent = errors.New("permanent")

// guard refuses a dial to an address that is not public.
func guard(address string, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefused, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefused, address)
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) { // carrier-grade NAT
		return fmt.Errorf("%w: %s is a private, loopback or link-local address (--feed-allow-private allows it)", ErrRefused, ip)
	}
	return nil
}

func (f *Fetcher) slot(host string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.hosts[host]
	if !ok {
		s = make(chan struct{}, f.cfg.PerHost)
		f.hosts[host] = s
	}
	return s
}

// Get fetches url, retrying 5xx, 429 and network errors with backoff.
func (f *Fetcher) Get(ctx context.Context, url string) (Result, error) {
	var last error
	for attempt := 0; ; attempt++ {
		res, wait, err := f.once(ctx, url)
		if err == nil {
			return res, nil
		}
		last = err
		var fe *Error
		if errors.As(err, &fe) && fe.Permanent || attempt >= f.cfg.Retries || ctx.Err() != nil {
			return Result{}, last
		}
		if wait == 0 {
			wait = f.cfg.Backoff << attempt
			wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return Result{}, last
		}
	}
}

// once is one attempt; wait is the server's Retry-After, if any.
func (f *Fetcher) once(ctx context.Context, url string) (Result, time.Duration, error) {
	fail := func(status int, permanent bool, err error) error {
		return &Error{URL: url, Status: status, Permanent: permanent, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return Result{}, 0, fail(0, true, fmt.Errorf("%w: not an http(s) URL", ErrRefused))
	}
	s := f.slot(req.URL.Host)
	select {
	case s <- struct{}{}:
	case <-ctx.Done():
		return Result{}, 0, fail(0, false, ctx.Err())
	}
	defer func() { <-s }()
	actx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	resp, err := f.client.Do(req.WithContext(actx))
	if err != nil {
		permanent := errors.Is(err, ErrRefused) || errors.Is(err, errPermanent)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", f.cfg.Timeout)
		}
		return Result{}, 0, fail(0, permanent, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return Result{}, retryAfter(resp), fail(resp.StatusCode, false, nil)
	case resp.StatusCode != http.StatusOK:
		return Result{}, 0, fail(resp.StatusCode, true, nil)
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if !f.accepted(mt) {
		return Result{}, 0, fail(0, true, fmt.Errorf("content type %q is not an image", ct))
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return Result{}, 0, fail(0, true, fmt.Errorf("%d bytes is over the %d-byte limit", resp.ContentLength, f.cfg.MaxBytes))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("body not read within %s", f.cfg.Timeout)
		}
		return Result{}, 0, fail(0, false, err)
	}
	if int64(len(data)) > f.cfg.MaxBytes {
		return Result{}, 0, fail(0, true, fmt.Errorf("over the %d-byte limit", f.cfg.MaxBytes))
	}
	return Result{Data: data, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), ContentType: mt}, 0, nil
}

func (f *Fetcher) accepted(mt string) bool {
	for _, p := range f.cfg.ContentTypes {
		if strings.HasPrefix(mt, p) {
			return true
		}
	}
	return false
}

func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	var s int
	if _, err := fmt.Sscanf(v, "%d", &s); err == nil && s >= 0 && s <= 60 {
		return time.Duration(s) * time.Second
	}
	return 0
}
