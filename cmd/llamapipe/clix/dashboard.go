package clix

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/ingest/api"
	"github.com/llamapipe/llamapipe/jobs/dashboard"
)

// DashboardUserFlags are the dashboard's logins with roles, besides its
// single login (--auth-user, --auth-token-file: an admin, a viewer under
// --read-only).
func DashboardUserFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dashboard-users", Usage: "file of logins with roles, one \"NAME ROLE SECRET\" per line, ROLE admin, viewer or tenant:TENANT (basic auth NAME and SECRET, or SECRET as a bearer token)", Sources: Env("DASHBOARD_USERS")},
		&cli.StringFlag{Name: "dashboard-api-tokens", Usage: "the API's tokens file (\"TOKEN TENANT\" per line): each token, as a bearer token, opens its tenant's view (role tenant)", Sources: Env("DASHBOARD_API_TOKENS_FILE")},
	}
}

// DashboardUsers reads DashboardUserFlags' files. A secret given to two
// logins (in either file) is refused: it would open one of them at random.
// Errors are *UsageError and never show a secret.
func DashboardUsers(cmd *cli.Command) ([]dashboard.User, error) {
	var users []dashboard.User
	if path := cmd.String("dashboard-users"); path != "" {
		us, err := dashboard.ReadUsers(path)
		if err != nil {
			return nil, &UsageError{Msg: "--dashboard-users: " + err.Error()}
		}
		users = us
	}
	if path := cmd.String("dashboard-api-tokens"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, &UsageError{Msg: fmt.Sprintf("--dashboard-api-tokens: %v", err)}
		}
		tokens, err := api.ParseTokens(f, "token file "+path)
		f.Close()
		if err != nil {
			return nil, &UsageError{Msg: "--dashboard-api-tokens: " + err.Error()}
		}
		if len(tokens) == 0 {
			return nil, &UsageError{Msg: "--dashboard-api-tokens: token file " + path + " holds no token"}
		}
		seen := map[string]bool{}
		for _, u := range users {
			seen[u.Secret] = true
		}
		for tok, tenant := range tokens {
			if seen[tok] {
				return nil, &UsageError{Msg: "--dashboard-api-tokens: a token is also a secret of --dashboard-users (content not shown)"}
			}
			users = append(users, dashboard.User{Name: "api:" + tenant, Role: dashboard.RoleTenant, Tenant: tenant, Secret: tok})
		}
	}
	return users, nil
}
