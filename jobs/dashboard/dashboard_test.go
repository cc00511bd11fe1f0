package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/outage"
)

// dbDashboard is this package's test Redis database.
const dbDashboard = 7

const (
	testUser     = "operator"
	testPassword = "correct horse battery staple"
	testToken    = "tok-3f9a1c0d5e"
)

// fixture is a dashboard on the test Redis with one batch in progress.
type fixture struct {
	srv     *httptest.Server
	tracker *jobs.Tracker
	rdb     redis.UniversalClient
	opt     asynq.RedisConnOpt
	batch   string
}

// newFixture creates batch "b-progress": 10 items, sealed, 3 done, 2 failed
// for one reason, 1 for another, 1 skipped (7 ended), created 10 minutes
// before the dashboard's clock.
func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	url, rdb := jobstest.Redis(t, dbDashboard)
	opt := jobstest.ConnOpt(t, url)
	tr := jobs.NewTracker(rdb, "")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := &fixture{tracker: tr, rdb: rdb, opt: opt, batch: "b-progress"}
	ctx := context.Background()
	if err := tr.Create(ctx, jobs.Batch{
		ID: f.batch, Created: now.Add(-10 * time.Minute), Spec: jobs.Spec{Task: jobs.TaskAuto, Queue: jobs.QueueDefault,
			Sources: []string{"s3://acme/inbox/<script>alert(1)</script>"}, Out: "s3://acme/results",
			Provider: "offline", Model: "llama-4-scout"},
	}); err != nil {
		t.Fatal(err)
	}
	record := func(i int, status, reason string) {
		t.Helper()
		e := jobs.Entry{Item: fmt.Sprintf("item-%02d", i), Source: fmt.Sprintf("s3://acme/inbox/f%02d.pdf", i), Kind: jobs.KindDocument,
			Status: status, Error: reason, InputTokens: 1000, OutputTokens: 100, Cost: 0.01, Currency: "USD"}
		if _, _, err := tr.Record(ctx, f.batch, e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		record(i, jobs.StatusDone, "")
	}
	record(3, jobs.StatusFailed, "encrypted: a password is required to open this PDF")
	record(4, jobs.StatusFailed, "encrypted: a password is required to open this PDF")
	record(5, jobs.StatusFailed, "source no longer exists")
	record(6, jobs.StatusSkipped, "empty object")
	if _, err := tr.Seal(ctx, f.batch, 10); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Tracker: tr, RedisConnOpt: opt,
		Auth:    Auth{User: testUser, Password: testPassword, Tokens: []string{testToken}},
		Now:     func() time.Time { return now },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "metrics") }),
	}
	cfg.Healthz, cfg.Readyz = health(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		f.srv.Close()
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// do sends a request; auth is "basic", "bearer", "" or a raw Authorization value.
func (f *fixture) do(t *testing.T, method, path, auth string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "":
	case "basic":
		req.SetBasicAuth(testUser, testPassword)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+testToken)
	default:
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		name, path, auth string
		want             int
	}{
		{"no credentials", "/", "", 401},
		{"no credentials on asynqmon", "/asynq/", "", 401},
		{"no credentials on asynqmon's API", "/asynq/api/queues", "", 401},
		{"no credentials on metrics", "/metrics", "", 401},
		{"no credentials on an unknown path", "/nothing-here", "", 401},
		{"wrong password", "/", "Basic " + b64(testUser+":wrong"), 401},
		{"wrong user", "/", "Basic " + b64("root:"+testPassword), 401},
		{"wrong token", "/", "Bearer tok-3f9a1c0d5f", 401},
		{"token as basic password", "/", "Basic " + b64(testUser+":"+testToken), 401},
		{"basic", "/", "basic", 200},
		{"bearer", "/", "bearer", 200},
		{"bearer, lower-case scheme", "/", "bearer " + testToken, 200},
		{"healthz without credentials", "/healthz", "", 200},
		{"readyz without credentials", "/readyz", "", 200},
	} {
		res, _ := f.do(t, "GET", c.path, c.auth, nil)
		if res.StatusCode != c.want {
			t.Errorf("%s: GET %s = %d, want %d", c.name, c.path, res.StatusCode, c.want)
		}
		if c.want == 401 {
			got := strings.Join(res.Header.Values("WWW-Authenticate"), " | ")
			if !strings.Contains(got, "Basic realm=") || !strings.Contains(got, "Bearer realm=") {
				t.Errorf("%s: WWW-Authenticate %q, want a Basic and a Bearer challenge", c.name, got)
			}
		}
	}
}

func b64(s string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	u, p, _ := strings.Cut(s, ":")
	req.SetBasicAuth(u, p)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestNewRefusesNoCredentials(t *testing.T) {
	url, rdb := jobstest.Redis(t, dbDashboard)
	tr := jobs.NewTracker(rdb, "")
	cfg := Config{Tracker: tr, RedisConnOpt: jobstest.ConnOpt(t, url), Auth: Auth{User: "only-a-user", Tokens: []string{""}}}
	if _, err := New(cfg); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("New without credentials: %v, want ErrNoCredentials", err)
	}
	cfg.Anonymous = true
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("anonymous dashboard: GET / = %d", res.StatusCode)
	}
}

// health stands in for worker/metrics.HealthHandlers (cmd/llamapipe wires
// the real ones; their behaviour is tested there and in worker/metrics).
func health(ping func(context.Context) error) (healthz, readyz http.Handler) {
	healthz = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	readyz = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ping(r.Context()) != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return healthz, readyz
}

func TestReadinessFollowsRedis(t *testing.T) {
	var pingErr error
	f := newFixture(t, func(c *Config) {
		c.Healthz, c.Readyz = health(func(context.Context) error { return pingErr })
	})
	if res, _ := f.do(t, "GET", "/readyz", "", nil); res.StatusCode != 200 {
		t.Errorf("/readyz = %d with Redis up", res.StatusCode)
	}
	pingErr = errors.New("connection refused")
	if res, _ := f.do(t, "GET", "/readyz", "", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Redis down, want 503", res.StatusCode)
	}
	if res, _ := f.do(t, "GET", "/healthz", "", nil); res.StatusCode != 200 {
		t.Errorf("/healthz = %d with Redis down, want 200", res.StatusCode)
	}
}

func TestBatchListShowsProgress(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.do(t, "GET", "/", "basic", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET / = %d: %s", res.StatusCode, body)
	}
	for _, want := range []string{
		`data-batch="b-progress"`,
		`<progress max="10" value="7">`,
		`7 / 10 (70.0%)`,
		`<td class="num done">3</td>`,
		`<td class="num failed">3</td>`,
		`<td class="num skipped">1</td>`,
		`7000 / 700`,              // tokens in / out
		`0.0700 USD`,              // cost with its currency
		`0.7`,                     // 7 items in 10 minutes
		`<td class="eta">4m</td>`, // 3 left at 0.7/min: 4m17s, shown to the minute
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`<meta http-equiv="refresh"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("batch page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("a source name is not escaped")
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

func TestBatchDetailGroupsFailures(t *testing.T) {
	f := newFixture(t, nil)
	res, body := f.do(t, "GET", "/batches/"+f.batch, "bearer", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET detail = %d: %s", res.StatusCode, body)
	}
	failed := section(t, body, `<table class="reasons failed">`)
	rows := regexp.MustCompile(`<td class="num">(\d+)</td><td class="reason">([^<]*)</td>`).FindAllStringSubmatch(failed, -1)
	if len(rows) != 2 {
		t.Fatalf("%d failure groups, want 2: %s", len(rows), failed)
	}
	if rows[0][1] != "2" || rows[0][2] != "encrypted: a password is required to open this PDF" {
		t.Errorf("first group %q × %s, want the encrypted reason × 2", rows[0][2], rows[0][1])
	}
	if rows[1][1] != "1" || rows[1][2] != "source no longer exists" {
		t.Errorf("second group %q × %s", rows[1][2], rows[1][1])
	}
	for _, want := range []string{"s3://acme/inbox/f03.pdf", "s3://acme/inbox/f04.pdf"} {
		if !strings.Contains(failed, want) {
			t.Errorf("failure examples lack %s", want)
		}
	}
	if skipped := section(t, body, `<table class="reasons skipped">`); !strings.Contains(skipped, "empty object") {
		t.Errorf("skipped reasons lack %q", "empty object")
	}
	for _, want := range []string{"<code>s3://acme/results/batches/b-progress/manifest.jsonl</code>", "<code>s3://acme/results/batches/b-progress/report.md</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %s", want)
		}
	}
	if res, _ := f.do(t, "GET", "/batches/nope", "basic", nil); res.StatusCode != 404 {
		t.Errorf("unknown batch = %d, want 404", res.StatusCode)
	}
}

func section(t *testing.T, body, start string) string {
	t.Helper()
	i := strings.Index(body, start)
	if i < 0 {
		t.Fatalf("no %s in page", start)
	}
	j := strings.Index(body[i:], "</table>")
	return body[i : i+j]
}

func TestManifestLinkWhenBrowsable(t *testing.T) {
	if l := locate("https://files.example/out/", jobs.ManifestKey); l.Link != "https://files.example/out/manifest.jsonl" {
		t.Errorf("https location: %+v", l)
	}
	if l := locate("s3://b/out", jobs.ReportKey); l.Link != "" || l.Where != "s3://b/out/report.md" {
		t.Errorf("s3 location: %+v", l)
	}
	if l := locate("javascript:alert(1)//", jobs.ReportKey); l.Link != "" {
		t.Errorf("javascript: location became a link: %+v", l)
	}
}

func TestSummarize(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	b := jobs.Batch{ID: "x", Created: created}
	for _, c := range []struct {
		name          string
		counts        jobs.Counts
		state, eta    string
		rate, percent float64
	}{
		{"listing", jobs.Counts{Total: 0, Done: 30}, "listing", "unknown until listing ends", 0.5, 0},
		{"running", jobs.Counts{Total: 120, Sealed: true, Done: 50, Failed: 10}, "running", "1h0m", 1, 50},
		{"nothing ended yet", jobs.Counts{Total: 10, Sealed: true}, "running", "unknown until items end", 0, 0},
		{"finalizing", jobs.Counts{Total: 6, Sealed: true, Done: 6}, "finalizing", "done", 0.1, 100},
		{"finished", jobs.Counts{Total: 60, Sealed: true, Done: 60, Finalized: true, Finished: created.Add(30 * time.Minute)}, "finished", "done", 2, 100},
		{"stopped", jobs.Counts{Total: 60, Sealed: true, Done: 1, Fatal: "openai: HTTP 401"}, "stopped", "stopped", 1.0 / 60, 100.0 / 60},
	} {
		v := summarize(b, c.counts, now)
		if v.State != c.state || v.ETA != c.eta {
			t.Errorf("%s: state %q ETA %q, want %q %q", c.name, v.State, v.ETA, c.state, c.eta)
		}
		if d := v.RatePerMin - c.rate; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: rate %v/min, want %v", c.name, v.RatePerMin, c.rate)
		}
		if d := v.Percent - c.percent; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: percent %v, want %v", c.name, v.Percent, c.percent)
		}
	}
}

func TestReadOnlyAsynqmonRefusesWrites(t *testing.T) {
	same := func(f *fixture) map[string]string {
		return map[string]string{"Origin": f.srv.URL, "Sec-Fetch-Site": "same-origin"}
	}
	ro := newFixture(t, func(c *Config) { c.ReadOnly = true })
	if res, body := ro.do(t, "POST", "/asynq/api/queues/default:pause", "basic", same(ro)); res.StatusCode != http.StatusForbidden {
		// --read-only makes the single login a viewer (roles.go): 403
		// before asynqmon, whose own read-only answer would be 405.
		t.Errorf("read-only: pause = %d %s, want 403", res.StatusCode, body)
	}
	ro.srv.Close()
	rw := newFixture(t, nil)
	if res, body := rw.do(t, "POST", "/asynq/api/queues/default:pause", "basic", same(rw)); res.StatusCode != http.StatusNoContent {
		t.Errorf("writable: pause = %d %s, want 204", res.StatusCode, body)
	}
	insp := asynq.NewInspector(rw.opt)
	defer insp.Close()
	if q, err := insp.GetQueueInfo("default"); err == nil && !q.Paused {
		t.Error("writable: pause answered but the queue is not paused")
	}
	// A cross-site form post, with the browser's basic credentials, is refused.
	if res, _ := rw.do(t, "POST", "/asynq/api/queues/default:pause", "basic", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site pause = %d, want 403", res.StatusCode)
	}
}

func TestMetricsAreServedBehindCredentials(t *testing.T) {
	f := newFixture(t, nil)
	if res, body := f.do(t, "GET", "/metrics", "bearer", nil); res.StatusCode != 200 || !strings.Contains(body, "metrics") {
		t.Errorf("/metrics = %d %q", res.StatusCode, body)
	}
	f = newFixture(t, func(c *Config) { c.Metrics = nil })
	if res, _ := f.do(t, "GET", "/metrics", "bearer", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics without a Metrics handler = %d, want 404", res.StatusCode)
	}
}

func TestListenChecks(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:80": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "dashboard.internal:8080": false, "garbage": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
	err := CheckListen("0.0.0.0:8080", Auth{})
	if err == nil || !strings.Contains(err.Error(), "without credentials") || !strings.Contains(err.Error(), "--auth-token-file") {
		t.Errorf("CheckListen on 0.0.0.0 without credentials: %v", err)
	}
	if err := CheckListen("0.0.0.0:8080", Auth{Tokens: []string{"t"}}); err != nil {
		t.Errorf("with a token: %v", err)
	}
	if err := CheckListen("127.0.0.1:8080", Auth{}); err != nil {
		t.Errorf("loopback without credentials: %v", err)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if pw, err := ReadPassword(write("pw", "s3cret pass\r\n")); err != nil || pw != "s3cret pass" {
		t.Errorf("ReadPassword = %q, %v", pw, err)
	}
	if _, err := ReadPassword(write("empty", "\n")); err == nil {
		t.Error("empty password file accepted")
	}
	ts, err := ReadTokens(write("tokens", "# rotated monthly\nnew-token\n\n old-token \n"))
	if err != nil || strings.Join(ts, ",") != "new-token,old-token" {
		t.Errorf("ReadTokens = %q, %v", ts, err)
	}
	_, err = ReadTokens(write("spaced", "Bearer hunter2\n"))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("token with a space: %v (must fail without showing it)", err)
	}
}

func TestDetailShowsProgressOfRunningItems(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	p := jobs.Progress{Item: "long", Source: "s3://legal/inbox/merger-agreement.pdf", Stage: "reduce level 2", Done: 3, Total: 7, Updated: time.Now()}
	if err := f.tracker.SetProgress(ctx, f.batch, p); err != nil {
		t.Fatal(err)
	}
	res, body := f.do(t, "GET", "/batches/"+f.batch, "basic", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "merger-agreement.pdf") || !strings.Contains(body, "reduce level 2") ||
		!strings.Contains(body, `<progress max="7" value="3">`) {
		t.Fatalf("detail page (%d) does not show the running item's progress:\n%s", res.StatusCode, body)
	}
	// Recording the item's end removes its progress.
	if _, _, err := f.tracker.Record(ctx, f.batch, jobs.Entry{Item: "long", Source: p.Source, Status: jobs.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if _, body := f.do(t, "GET", "/batches/"+f.batch, "basic", nil); strings.Contains(body, "reduce level 2") {
		t.Error("progress still shown after the item ended")
	}
}

// A batch waiting out a failing provider batch API shows the warning on
// its page and in the list, until it is cleared.
func TestBatchPagesShowTheWarning(t *testing.T) {
	f := newFixture(t, nil)
	msg := "provider batch API failing (collect, 2 times since 04:00:00): 502 Bad Gateway"
	if err := f.tracker.SetWarning(context.Background(), f.batch, msg); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(t, "GET", "/batches/"+f.batch, "bearer", nil)
	if !strings.Contains(body, `<p class="warning">Warning: `+msg+`</p>`) {
		t.Errorf("batch page lacks the warning")
	}
	if _, body = f.do(t, "GET", "/", "basic", nil); !strings.Contains(body, `title="`+msg+`">(warning)`) {
		t.Errorf("batch list lacks the warning")
	}
	if err := f.tracker.SetWarning(context.Background(), f.batch, ""); err != nil {
		t.Fatal(err)
	}
	if _, body = f.do(t, "GET", "/batches/"+f.batch, "bearer", nil); strings.Contains(body, "Warning:") {
		t.Errorf("warning still shown after it was cleared")
	}
}

// While the batch's model is down, its page shows a banner naming it,
// with until when and why (escaped: the reason holds the provider's
// message); once the outage is over, none.
func TestBatchPageShowsProviderDown(t *testing.T) {
	f := newFixture(t, nil)
	ctx, now := context.Background(), time.Now()
	quota := jobs.ModelQuotaName("offline", "llama-4-scout")
	if err := outage.Mark(ctx, f.rdb, quota, outage.Down{Provider: "offline", Kind: "offline", Model: "llama-4-scout",
		Until: now.Add(time.Hour), Reason: "3 connection errors or 5xx answers in a row, the last: <b>502</b>"}, now); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(t, "GET", "/batches/"+f.batch, "bearer", nil)
	until := now.Add(time.Hour).UTC().Format("2006-01-02 15:04:05 UTC")
	if want := `<p class="warning provider-down">Provider down: offline (llama-4-scout) since `; !strings.Contains(body, want) ||
		!strings.Contains(body, "until "+until+": 3 connection errors or 5xx answers in a row, the last: &lt;b&gt;502&lt;/b&gt;.") {
		t.Fatalf("batch page lacks the provider-down banner:\n%s", body)
	}
	if err := f.rdb.Del(ctx, jobs.ProviderOutageKey(quota)).Err(); err != nil { // the down time ended
		t.Fatal(err)
	}
	if _, body = f.do(t, "GET", "/batches/"+f.batch, "bearer", nil); strings.Contains(body, "Provider down:") {
		t.Error("banner still shown after the outage ended")
	}
}
