package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook call.
const (
	// HeaderEvent names the event, e.g. "batch.completed".
	HeaderEvent = "X-Llamapipe-Event"
	// HeaderDelivery is the same on every attempt of one delivery,
	// so receivers can ignore a repeat.
	HeaderDelivery = "X-Llamapipe-Delivery"
	// HeaderTimestamp is the signing time in Unix seconds.
	HeaderTimestamp = "X-Llamapipe-Timestamp"
	// HeaderSignature is "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">".
	HeaderSignature = "X-Llamapipe-Signature"
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Sign returns the X-Llamapipe-Signature value of body signed at ts:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>." + body)>".
func Sign(secret []byte, ts time.Time, body []byte) string {
	unix := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + unix + ",v1=" + mac(secret, unix, body)
}

func mac(secret []byte, unix string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrSignature reports a webhook call whose signature is missing,
// malformed, wrong or too old.
var ErrSignature = errors.New("webhook: bad signature")

// Verify checks a webhook call as a receiver gets it: the
// X-Llamapipe-Signature header must hold a v1 HMAC-SHA256 of
// "<t>.<body>" under secret, and t must be within tolerance of now (zero
// tolerance: DefaultTolerance; negative: no time check). Several v1
// values are accepted (any one matching), so senders can rotate secrets.
// Errors wrap ErrSignature.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrSignature)
	}
	sig := header.Get(HeaderSignature)
	if sig == "" {
		return fmt.Errorf("%w: no %s header", ErrSignature, HeaderSignature)
	}
	var unix string
	var macs []string
	for part := range strings.SplitSeq(sig, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed %s header", ErrSignature, HeaderSignature)
		}
		switch k {
		case "t":
			unix = v
		case "v1":
			macs = append(macs, v)
		}
	}
	ts, err := strconv.ParseInt(unix, 10, 64)
	if err != nil || len(macs) == 0 {
		return fmt.Errorf("%w: %s header needs t=<unix> and v1=<hex>", ErrSignature, HeaderSignature)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(ts, 0)).Abs(); d > tolerance {
			return fmt.Errorf("%w: timestamp %d is %s away from now (tolerance %s)", ErrSignature, ts, d.Round(time.Second), tolerance)
		}
	}
	want := []byte(mac(secret, unix, body))
	for _, m := range macs {
		if hmac.Equal([]byte(strings.ToLower(m)), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches the body", ErrSignature)
}
