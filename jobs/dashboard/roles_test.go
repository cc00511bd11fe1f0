package dashboard

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

const (
	adminSecret  = "adm-9d2f7c1e"
	viewerSecret = "view-51ab3e08"
	acmeSecret   = "acme-7c04d9aa"
)

var testUsers = "# dashboard logins\n" +
	"ada admin " + adminSecret + "\n" +
	"vic viewer " + viewerSecret + "\n\n" +
	"tina tenant:acme " + acmeSecret + "\n"

// newRolesFixture is the dashboard fixture with the users file's logins
// (besides the single login), the results view, and batches b-acme
// (tenant acme, one done image) and b-globex (tenant globex, one done
// image) besides b-progress (no tenant).
func newRolesFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	users, err := ParseUsers(strings.NewReader(testUsers), "users")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.Auth.Users = users
		c.Open = func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }
		if mutate != nil {
			mutate(c)
		}
	})
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		id := "b-" + tenant
		src := t.TempDir()
		if err := f.tracker.Create(ctx, jobs.Batch{ID: id, Created: time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC),
			Spec: jobs.Spec{Tenant: tenant, Task: jobs.TaskAuto, Queue: jobs.QueueDefault, Sources: []string{src}, Out: t.TempDir()}}); err != nil {
			t.Fatal(err)
		}
		e := jobs.Entry{Item: "img-1", Source: src + "/" + tenant + ".png", Key: tenant + ".png", Kind: jobs.KindImage, Status: jobs.StatusDone}
		if _, _, err := f.tracker.Record(ctx, id, e); err != nil {
			t.Fatal(err)
		}
		if _, err := f.tracker.Seal(ctx, id, 1); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func basicAuth(user, pass string) string { return "Basic " + b64(user+":"+pass) }

func TestRolesOverHTTP(t *testing.T) {
	f := newRolesFixture(t, nil)
	admin, viewer, tenant := basicAuth("ada", adminSecret), basicAuth("vic", viewerSecret), basicAuth("tina", acmeSecret)
	for _, c := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"admin lists", "GET", "/", admin, 200},
		{"admin pauses a queue", "POST", "/asynq/api/queues/default:pause", admin, 204},
		{"single login is an admin", "POST", "/asynq/api/queues/default:resume", "basic", 204},
		{"viewer lists", "GET", "/", viewer, 200},
		{"viewer opens a tenant's batch", "GET", "/batches/b-globex", viewer, 200},
		{"viewer reads asynqmon's API", "GET", "/asynq/api/queues", viewer, 200},
		{"viewer reads metrics", "GET", "/metrics", viewer, 200},
		{"viewer cannot pause", "POST", "/asynq/api/queues/default:pause", viewer, 403},
		{"viewer cannot delete", "DELETE", "/asynq/api/queues/default", viewer, 403},
		{"viewer by bearer cannot pause", "POST", "/asynq/api/queues/default:pause", "Bearer " + viewerSecret, 403},
		{"tenant lists", "GET", "/", tenant, 200},
		{"tenant opens its batch", "GET", "/batches/b-acme", tenant, 200},
		{"tenant opens its results", "GET", "/batches/b-acme/results", tenant, 200},
		{"tenant by bearer opens its batch", "GET", "/batches/b-acme", "Bearer " + acmeSecret, 200},
		{"tenant: another tenant's batch", "GET", "/batches/b-globex", tenant, 404},
		{"tenant: a batch without a tenant", "GET", "/batches/b-progress", tenant, 404},
		{"tenant: another tenant's results", "GET", "/batches/b-globex/results", tenant, 404},
		{"tenant: another tenant's digest", "GET", "/batches/b-globex/doc?item=img-1", tenant, 404},
		{"tenant: another tenant's thumbnail", "GET", "/batches/b-globex/image?item=img-1", tenant, 404},
		{"tenant: asynqmon", "GET", "/asynq/", tenant, 403},
		{"tenant: asynqmon's API", "GET", "/asynq/api/queues", tenant, 403},
		{"tenant: metrics", "GET", "/metrics", tenant, 403},
		{"tenant cannot pause", "POST", "/asynq/api/queues/default:pause", tenant, 403},
		{"user with another's secret", "GET", "/", basicAuth("tina", adminSecret), 401},
		{"unknown user", "GET", "/", basicAuth("eve", acmeSecret), 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, body := f.do(t, c.method, c.path, c.auth, nil)
			if res.StatusCode != c.want {
				t.Errorf("%s %s: HTTP %d, want %d (%s)", c.method, c.path, res.StatusCode, c.want, strings.TrimSpace(body))
			}
		})
	}

	// What each sees on the batch list and in the navigation.
	_, body := f.do(t, "GET", "/", tenant, nil)
	if !strings.Contains(body, `data-batch="b-acme"`) || strings.Contains(body, `data-batch="b-globex"`) || strings.Contains(body, `data-batch="b-progress"`) {
		t.Errorf("tenant acme's list does not show exactly its batch:\n%s", body)
	}
	if strings.Contains(body, `href="/asynq/"`) || strings.Contains(body, `href="/metrics"`) {
		t.Error("tenant's page links asynqmon or metrics")
	}
	for _, who := range []string{viewer, admin} {
		_, body := f.do(t, "GET", "/", who, nil)
		for _, b := range []string{"b-acme", "b-globex", "b-progress"} {
			if !strings.Contains(body, `data-batch="`+b+`"`) {
				t.Errorf("list lacks %s", b)
			}
		}
	}
	// asynqmon hides its action buttons from a viewer (its read-only flag)
	// and shows them to an admin.
	if _, body := f.do(t, "GET", "/asynq/", viewer, nil); !strings.Contains(body, `FLAG_READ_ONLY="true"`) {
		t.Error("viewer's asynqmon is not read-only")
	}
	if _, body := f.do(t, "GET", "/asynq/", admin, nil); !strings.Contains(body, `FLAG_READ_ONLY="false"`) {
		t.Error("admin's asynqmon is read-only")
	}
}

func TestReadOnlyMakesEveryLoginAViewer(t *testing.T) {
	f := newRolesFixture(t, func(c *Config) { c.ReadOnly = true })
	for _, auth := range []string{"basic", "bearer", basicAuth("ada", adminSecret)} {
		if res, _ := f.do(t, "POST", "/asynq/api/queues/default:pause", auth, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("read-only dashboard, %s: pause answered %d, want 403", auth, res.StatusCode)
		}
		if res, body := f.do(t, "GET", "/asynq/", auth, nil); res.StatusCode != 200 || !strings.Contains(body, `FLAG_READ_ONLY="true"`) {
			t.Errorf("read-only dashboard, %s: asynqmon %d, not read-only", auth, res.StatusCode)
		}
	}
}

func TestRejectedCredentialsAreNotLogged(t *testing.T) {
	var logs bytes.Buffer
	f := newRolesFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	f.do(t, "GET", "/", basicAuth("tina", adminSecret), nil)
	f.do(t, "GET", "/", "Bearer "+viewerSecret+"x", nil)
	f.do(t, "GET", "/", basicAuth("vic", viewerSecret), nil)
	if !strings.Contains(logs.String(), "rejected credentials") {
		t.Fatalf("no rejection logged: %s", logs.String())
	}
	for _, s := range []string{adminSecret, viewerSecret, acmeSecret, testPassword, testToken} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log holds a secret: %s", logs.String())
		}
	}
}

func TestParseUsers(t *testing.T) {
	users, err := ParseUsers(strings.NewReader(testUsers), "users")
	if err != nil {
		t.Fatal(err)
	}
	want := []User{{"ada", RoleAdmin, "", adminSecret}, {"vic", RoleViewer, "", viewerSecret}, {"tina", RoleTenant, "acme", acmeSecret}}
	if len(users) != len(want) {
		t.Fatalf("got %d users, want %d", len(users), len(want))
	}
	for i := range want {
		if users[i] != want[i] {
			t.Errorf("user %d: %+v, want %+v", i, users[i], want[i])
		}
	}
	for _, bad := range []string{
		"ada admin",                                 // no secret
		"ada root s3cret-aa",                        // unknown role
		"ada admin:acme s3cret-aa",                  // admin with a tenant
		"ada tenant: s3cret-aa",                     // tenant without a name
		"ada tenant:../x s3cret-aa",                 // bad tenant name
		"ada admin s3cret-aa\nada viewer s3cret-bb", // a name twice
		"ada admin s3cret-aa\nbob viewer s3cret-aa", // a secret twice
		"# nobody\n",
	} {
		_, err := ParseUsers(strings.NewReader(bad), "users")
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}
