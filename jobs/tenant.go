package jobs

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrBadTenant is wrapped by ValidTenant's errors.
var ErrBadTenant = errors.New("bad tenant name")

// tenantName is what a tenant name may look like: it becomes part of Redis
// keys (TenantBatchesKey, TenantSpendKey, ContentResultKey, IdempotencyKey),
// metric labels and log fields, so ':', '{', '}', '/', spaces and the like
// stay out.
var tenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidTenant refuses a name that cannot be a tenant: a tenant name is 1 to
// 64 letters, digits, '.', '_' and '-', starting with a letter or digit.
// Every place a tenant name enters (API tokens, the tenants file, the
// CLI's --tenant, schedule entries, ingest creating a batch) checks it
// here. The error names the rule; callers that cannot show the name (a
// token line that may hold a secret) say so themselves.
func ValidTenant(name string) error {
	if !tenantName.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", ErrBadTenant, name)
	}
	return nil
}
