package storage

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Location is a parsed location URL.
type Location struct {
	// Scheme is "s3" or "file".
	Scheme string
	// Bucket is the S3 bucket; empty for local locations.
	Bucket string
	// Prefix is the key prefix inside the bucket (no leading or trailing "/"),
	// or, for local locations, the absolute folder path.
	Prefix string
}

// String returns the canonical URL form: s3://bucket/prefix or a plain path.
func (l Location) String() string {
	if l.Scheme == "s3" {
		if l.Prefix == "" {
			return "s3://" + l.Bucket
		}
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return l.Prefix
}

// ParseLocation parses "s3://bucket/prefix", "file:///abs/path" or a plain
// local path (made absolute and cleaned). An S3 prefix is taken literally (no
// percent-decoding), trimmed of "/" and must pass CleanKey (ErrInvalidKey).
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, fmt.Errorf("location: empty")
	}
	if rest, ok := strings.CutPrefix(s, "s3://"); ok {
		// Not url.Parse: a key prefix may contain "?", "#" or "%" literally.
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return Location{}, fmt.Errorf("location %q: no bucket", s)
		}
		prefix = strings.Trim(prefix, "/")
		if prefix != "" {
			c, err := CleanKey(prefix)
			if err != nil {
				return Location{}, fmt.Errorf("location %q: prefix: %w", s, err)
			}
			prefix = c
		}
		return Location{Scheme: "s3", Bucket: bucket, Prefix: prefix}, nil
	}
	p := s
	if strings.HasPrefix(s, "file://") {
		u, err := url.Parse(s)
		if err != nil {
			return Location{}, fmt.Errorf("location %q: %w", s, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("location %q: file URL with host %q (use file:///absolute/path)", s, u.Host)
		}
		p = u.Path
	} else if i := strings.Index(s, "://"); i > 0 && !strings.ContainsAny(s[:i], `/\`) {
		return Location{}, fmt.Errorf("location %q: unsupported scheme %q (use s3:// or a local path)", s, s[:i])
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return Location{}, fmt.Errorf("location %q: %w", s, err)
	}
	return Location{Scheme: "file", Prefix: abs}, nil
}
