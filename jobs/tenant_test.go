package jobs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
)

func TestValidTenant(t *testing.T) {
	for _, ok := range []string{"alpha", "beta-2", "legal_dept", "A1", "x", strings.Repeat("a", 64)} {
		if err := jobs.ValidTenant(ok); err != nil {
			t.Errorf("ValidTenant(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", "{a}", "a}", "a b", "a/b", "-a", ".a", "a\n", strings.Repeat("a", 65), "ä"} {
		if err := jobs.ValidTenant(bad); !errors.Is(err, jobs.ErrBadTenant) {
			t.Errorf("ValidTenant(%q) = %v, want ErrBadTenant", bad, err)
		}
	}
	if _, err := ingesttask.NewTask(ingesttask.Payload{Spec: jobs.Spec{Sources: []string{"/in"}, Out: "/out", Tenant: "a:b"}}); !errors.Is(err, jobs.ErrBadTenant) {
		t.Errorf("ingest task (a schedule entry) for tenant a:b: %v, want ErrBadTenant", err)
	}
}
