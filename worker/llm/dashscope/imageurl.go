package dashscope

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// A presigned URL is a secret while it lives: anyone holding it may read
// the image. An answer that quotes it (a "cannot download <url>" message)
// must not carry it into errors, logs or the manifest, so every error of a
// call that sent URLs goes through hideError.

// hideURLs returns s with each of urls shown as its address without the
// query (where the signature is), and any of their query values that is
// left (quoted alone or decoded) as [REDACTED].
func hideURLs(s string, urls []string) string {
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.RawQuery == "" {
			continue
		}
		bare := *u
		bare.RawQuery, bare.Fragment = "", ""
		shown := bare.String() + "?[REDACTED]"
		s = strings.ReplaceAll(s, raw, shown)
		if dec, err := url.QueryUnescape(raw); err == nil {
			s = strings.ReplaceAll(s, dec, shown)
		}
		s = strings.ReplaceAll(s, u.RawQuery, "[REDACTED]")
		for _, vs := range u.Query() {
			for _, v := range vs {
				if len(v) >= 16 { // signatures, credentials, tokens; not dates or "host"
					s = strings.ReplaceAll(s, v, "[REDACTED]")
					s = strings.ReplaceAll(s, url.QueryEscape(v), "[REDACTED]")
				}
			}
		}
	}
	return s
}

// hiddenError shows err's text through hideURLs and unwraps to it.
type hiddenError struct {
	err  error
	urls []string
}

func (h *hiddenError) Error() string { return hideURLs(h.err.Error(), h.urls) }
func (h *hiddenError) Unwrap() error { return h.err }

// hideError returns err with urls hidden from its text: an *llm.Error is
// copied with its code, message and cause hidden (its kind, status and
// Retry-After kept), anything else is wrapped.
func hideError(err error, urls []string) error {
	if err == nil || len(urls) == 0 {
		return err
	}
	var e *llm.Error
	if !errors.As(err, &e) {
		return &hiddenError{err: err, urls: urls}
	}
	c := *e
	c.Code, c.Message = hideURLs(c.Code, urls), hideURLs(c.Message, urls)
	if c.Err != nil {
		c.Err = &hiddenError{err: c.Err, urls: urls}
	}
	return &c
}

// fetchWords are what DashScope's refusals of an image it could not fetch
// say ("Download the media resource timed out", "The provided URL does not
// appear to be valid").
var fetchWords = []string{"download", "url", "fetch", "media resource"}

// byURL adds to a refusal of a call whose image went by URL what to do
// about it: the service fetches the URL itself, so the storage endpoint
// must be reachable from it and the URL still valid.
func (c *Client) byURL(err error) error {
	var e *llm.Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 || e.Kind == llm.Fatal || e.RateLimited {
		return err
	}
	text := strings.ToLower(e.Code + " " + e.Message)
	for _, w := range fetchWords {
		if strings.Contains(text, w) {
			e.Message += fmt.Sprintf(" (the image went by a presigned URL of the output store, valid %v: "+
				"the storage endpoint must be reachable from DashScope; or send images inline with --image-transport inline)", c.o.ImageURLLifetime)
			return e
		}
	}
	return err
}
