package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// ErrNotAllowed is wrapped by Allowed's refusals of a
// well-formed URL that lies under none of the allowed prefixes.
var ErrNotAllowed = errors.New("not under an allowed webhook prefix")

// webhookTarget is a URL reduced to what an allow-list compares: scheme,
// host (lower case), port (explicit or the scheme's) and the cleaned path.
type webhookTarget struct {
	scheme, host, port, path string
	dir                      bool // the path ends in "/" (a prefix: only below it)
}

// ParsePrefix checks an operator's webhook prefix (serve
// --webhook-allow): an absolute http:// or https:// URL without
// credentials, query or fragment, whose path has no "." or ".." segment
// and no encoded "/", "\" or ".". An http:// prefix is the operator's
// explicit choice to allow plain HTTP to that host.
func ParsePrefix(p string) error {
	_, err := parseWebhookURL(p, true)
	if err != nil {
		return fmt.Errorf("webhook prefix %s: %w", redact(p), err)
	}
	return nil
}

// Allowed accepts raw, a batch's completion webhook, when it is an
// absolute http(s) URL without credentials, its path is already normal (no
// "." or ".." segment, no encoded "/", "\" or "." that a server might
// decode into one), and it lies under one of prefixes: the same scheme,
// host and port (the scheme's default port when none is given), and a path
// that continues the prefix's at a segment boundary ("/llamapipe" admits
// "/llamapipe" and "/llamapipe/x" but not "/llamapipe-evil"; a prefix
// ending in "/" admits only paths below it). Query and fragment of raw are
// not compared. Prefixes that ParsePrefix refuses admit nothing.
// The errors never repeat raw's password.
func Allowed(raw string, prefixes []string) error {
	t, err := parseWebhookURL(raw, false)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	for _, p := range prefixes {
		pt, err := parseWebhookURL(p, true)
		if err != nil {
			continue
		}
		if t.under(pt) {
			return nil
		}
	}
	return fmt.Errorf("webhook %s is %w", redact(raw), ErrNotAllowed)
}

// under reports whether t lies under the prefix p.
func (t webhookTarget) under(p webhookTarget) bool {
	if t.scheme != p.scheme || t.host != p.host || t.port != p.port {
		return false
	}
	if p.path == "/" {
		return true
	}
	if t.path == p.path {
		return !p.dir || t.dir
	}
	return strings.HasPrefix(t.path, p.path+"/")
}

func parseWebhookURL(raw string, prefix bool) (webhookTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return webhookTarget{}, errors.New("give an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return webhookTarget{}, errors.New("the URL must not carry credentials (the workers sign each call instead)")
	}
	if prefix && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "") {
		return webhookTarget{}, errors.New("a prefix has no query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return webhookTarget{}, errors.New("give an absolute http:// or https:// URL")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	esc := strings.ToLower(u.EscapedPath())
	if strings.Contains(esc, "%2f") || strings.Contains(esc, "%5c") || strings.Contains(esc, "%2e") || strings.Contains(u.Path, `\`) {
		return webhookTarget{}, errors.New("the path must not hold an encoded \"/\", \"\\\" or \".\"")
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return webhookTarget{}, errors.New("the path must not hold \".\" or \"..\" segments")
		}
	}
	t := webhookTarget{scheme: u.Scheme, host: host, port: port, path: path.Clean(p), dir: strings.HasSuffix(p, "/") && p != "/"}
	return t, nil
}

// redact shows a URL without its password (or raw as "invalid URL" when it
// does not parse, as it might hold one).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
