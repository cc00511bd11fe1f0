package tenants

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/llamapipe/llamapipe/storage"
)

// checkLocation accepts what the API accepts as a location: an s3:// URL,
// a file:// URL or an absolute folder.
func checkLocation(s string) error {
	if !strings.HasPrefix(s, "s3://") && !strings.HasPrefix(s, "file://") && !strings.HasPrefix(s, "/") {
		return fmt.Errorf("location %q: give an s3://bucket/prefix URL, a file:// URL or an absolute folder", s)
	}
	if _, err := storage.ParseLocation(s); err != nil {
		return fmt.Errorf("location %q: %w", s, err)
	}
	return nil
}

// Locations are the source and output locations a tenant's API submits may
// use.
type Locations struct {
	// Sources and Outputs are location prefixes (s3://bucket/prefix,
	// file:// URLs or absolute folders). Empty: none.
	Sources, Outputs []string
}

// Locations returns a tenant's locations: those its entry lists (sources,
// outputs) when it lists any; else Default's (an operator's explicit
// default for every tenant that lists none); else none at all, so a tenant
// the operator gave no locations can submit nothing through the API (deny
// by default). A nil Config (no tenants file) has no per-tenant
// locations: ok is false and only the server-wide --allow prefixes apply.
func (c *Config) Locations(tenant string) (l Locations, ok bool) {
	if c == nil {
		return Locations{}, false
	}
	if t, listed := c.Tenants[tenant]; listed && tenant != "" && (len(t.Sources) > 0 || len(t.Outputs) > 0) {
		return Locations{Sources: t.Sources, Outputs: t.Outputs}, true
	}
	return Locations{Sources: c.Default.Sources, Outputs: c.Default.Outputs}, true
}

// WebhookSecret reads the key a tenant's webhooks are signed with: its
// entry's webhook_secret_file, else Default's; ok is false when neither
// names one (the caller falls back to the global key). The error names the
// file, never its content; an empty file is an error, not "no key".
func (c *Config) WebhookSecret(tenant string) (key []byte, ok bool, err error) {
	if c == nil {
		return nil, false, nil
	}
	path := c.Default.WebhookSecretFile
	if t, listed := c.Tenants[tenant]; listed && tenant != "" && t.WebhookSecretFile != "" {
		path = t.WebhookSecretFile
	}
	if path == "" {
		return nil, false, nil
	}
	if !filepath.IsAbs(path) && c.dir != "" {
		path = filepath.Join(c.dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, true, fmt.Errorf("webhook key of tenant %q: %w", tenant, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, true, fmt.Errorf("webhook key of tenant %q: %s is empty", tenant, path)
	}
	return b, true, nil
}
