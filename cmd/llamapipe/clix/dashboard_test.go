package clix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/jobs/dashboard"
)

// dashboardUsers runs DashboardUsers on a command given args.
func dashboardUsers(t *testing.T, args ...string) ([]dashboard.User, error) {
	t.Helper()
	var users []dashboard.User
	var err error
	cmd := &cli.Command{Name: "dashboard", Flags: DashboardUserFlags(), Action: func(_ context.Context, cmd *cli.Command) error {
		users, err = DashboardUsers(cmd)
		return nil
	}}
	if rerr := cmd.Run(context.Background(), append([]string{"dashboard"}, args...)); rerr != nil {
		t.Fatal(rerr)
	}
	return users, err
}

func TestDashboardUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	users := write("users", "ada admin pw-admin-1\ntina tenant:acme pw-tina-2\n")
	tokens := write("tokens", "tok-acme-3 acme\ntok-globex-4 globex\n")
	clash := write("clash", "pw-tina-2 acme\n") // a users file's secret as an API token

	got, err := dashboardUsers(t, "--dashboard-users", users, "--dashboard-api-tokens", tokens)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, u := range got {
		roles[u.Secret] = string(u.Role) + ":" + u.Tenant
	}
	want := map[string]string{"pw-admin-1": "admin:", "pw-tina-2": "tenant:acme", "tok-acme-3": "tenant:acme", "tok-globex-4": "tenant:globex"}
	if len(roles) != len(want) {
		t.Errorf("logins %v, want %v", roles, want)
	}
	for s, r := range want {
		if roles[s] != r {
			t.Errorf("secret %s opens %q, want %q", s, roles[s], r)
		}
	}
	if got, err := dashboardUsers(t); err != nil || len(got) != 0 {
		t.Errorf("no flags: %v, %v", got, err)
	}

	for _, args := range [][]string{
		{"--dashboard-users", clash, "--dashboard-api-tokens", tokens}, // not "NAME ROLE SECRET"
		{"--dashboard-users", users, "--dashboard-api-tokens", clash},  // a secret twice
		{"--dashboard-users", filepath.Join(dir, "missing")},
		{"--dashboard-api-tokens", write("empty", "# none\n")},
	} {
		_, err := dashboardUsers(t, args...)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error", args, err)
			continue
		}
		if strings.Contains(err.Error(), "pw-") || strings.Contains(err.Error(), "tok-") {
			t.Errorf("%v: error shows a secret: %v", args, err)
		}
	}
}
