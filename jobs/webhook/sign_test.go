package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWebhookSignatureVerifies(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"event":"batch.completed","batch":"b1"}`)
	at := time.Unix(1_700_000_000, 0)
	h := signedHeader(secret, at, body)

	// The scheme is the documented one, computed independently here.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(at.Unix(), 10) + "." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := h.Get(HeaderSignature); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if err := Verify(secret, h, body, at.Add(time.Minute), 0); err != nil {
		t.Fatalf("valid call refused: %v", err)
	}

	rotated := http.Header{}
	rotated.Set(HeaderSignature, "t=1700000000,v1=00ff,v1="+strings.TrimPrefix(want, "t=1700000000,v1="))
	if err := Verify(secret, rotated, body, at, 0); err != nil {
		t.Errorf("a second v1 value that matches is refused: %v", err)
	}

	tampered := []byte(strings.Replace(string(body), "b1", "b2", 1))
	cases := []struct {
		name   string
		secret []byte
		header http.Header
		body   []byte
		now    time.Time
		tol    time.Duration
	}{
		{"tampered body", secret, h, tampered, at, 0},
		{"other secret", []byte("other"), h, body, at, 0},
		{"too old", secret, h, body, at.Add(10 * time.Minute), 0},
		{"too old for a tight tolerance", secret, h, body, at.Add(2 * time.Second), time.Second},
		{"no header", secret, http.Header{}, body, at, 0},
		{"malformed", secret, http.Header{HeaderSignature: {"garbage"}}, body, at, 0},
		{"no v1", secret, http.Header{HeaderSignature: {"t=1700000000"}}, body, at, 0},
		{"no secret", nil, h, body, at, 0},
	}
	for _, c := range cases {
		if err := Verify(c.secret, c.header, c.body, c.now, c.tol); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: got %v, want ErrWebhookSignature", c.name, err)
		}
	}
	if err := Verify(secret, h, body, at.Add(24*time.Hour), -1); err != nil {
		t.Errorf("negative tolerance should skip the time check: %v", err)
	}
}

func signedHeader(secret []byte, at time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderSignature, Sign(secret, at, body))
	return h
}
