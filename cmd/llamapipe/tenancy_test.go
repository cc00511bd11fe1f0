package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

// tenancyEvent is one webhook call the test's receiver got.
type tenancyEvent struct {
	header http.Header
	body   []byte
	tenant string
}

// TestTenantsAreKeptApartThroughServe: serve with two tenants (alpha,
// beta), each with its own folders and webhook key in the tenants file,
// and a worker with the same file. Beta can neither read alpha's folder
// nor write into alpha's output, a link out of alpha's folder is refused,
// the same image in both tenants' folders is captioned for each without
// naming the other's object, and each tenant's webhook is signed with its
// own key.
func TestTenantsAreKeptApartThroughServe(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	root := t.TempDir()
	dir := func(p ...string) string {
		d := filepath.Join(append([]string{root}, p...)...)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := jobstest.ReadFile(t, filepath.Join(jobstest.CorpusDir(t, "images", "photos"), "ColorfulCups_by_Dmitri_Popov.jpg"))
	alphaSrc, betaSrc := dir("data", "alpha"), dir("data", "beta")
	alphaOut, betaOut := dir("results", "alpha"), dir("results", "beta")
	write(filepath.Join(alphaSrc, "img", "unreleased-2027", "prototype-phone.jpg"), img)
	write(filepath.Join(alphaSrc, "contract.txt"), []byte("A confidential contract between Alpha and Omega."))
	write(filepath.Join(betaSrc, "img", "phone.jpg"), img)
	// alpha's earlier manifest, which beta must not replace.
	alphaManifest := filepath.Join(alphaOut, "manifest.jsonl")
	write(alphaManifest, []byte(`{"item":"earlier"}`+"\n"))
	// A link under alpha's folder pointing into beta's.
	if err := os.Symlink(betaSrc, filepath.Join(alphaSrc, "to-beta")); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"alpha": "alpha-webhook-key-7f3a", "beta": "beta-webhook-key-19c0"}
	for n, k := range keys {
		write(filepath.Join(root, "secrets", n), []byte(k+"\n"))
	}
	global := "global-webhook-key-55d2"
	write(filepath.Join(root, "secrets", "global"), []byte(global))
	tenantsFile := filepath.Join(root, "tenants.yaml")
	write(tenantsFile, fmt.Appendf(nil, `tenants:
  alpha: {sources: [%q], outputs: [%q], webhook_secret_file: secrets/alpha}
  beta: {sources: [%q, "s3://data/beta/"], outputs: [%q], webhook_secret_file: secrets/beta}
`, alphaSrc, alphaOut, betaSrc, betaOut))

	var mu sync.Mutex
	var events []tenancyEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev webhook.Event
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		events = append(events, tenancyEvent{header: r.Header.Clone(), body: body, tenant: ev.Tenant})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	t.Setenv(envAPITokens, "tok-alpha-3c1e alpha\ntok-beta-8d20 beta\n")
	t.Setenv(envWebhookSecret, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut, serveErr, workOut, workErr lockedBuf
	served, worked := make(chan int, 1), make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"llamapipe", "--redis-url", url, "serve", "--listen", "127.0.0.1:0",
			"--allow", filepath.Join(root, "data"), "--allow", "s3://data/", "--allow-out", filepath.Join(root, "results"),
			"--tenants", tenantsFile, "--webhook-allow", hook.URL + "/"}, &serveOut, &serveErr)
	}()
	go func() {
		worked <- run(ctx, []string{"llamapipe", "--redis-url", url, "worker", "--concurrency", "2",
			"--tenants", tenantsFile, "--webhook-secret-file", filepath.Join(root, "secrets", "global")}, &workOut, &workErr)
	}()
	urlRe := regexp.MustCompile(`api on (http://127\.0\.0\.1:\d+)/v1/`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(serveOut.String()); m != nil {
			base = m[1]
		}
		select {
		case code := <-served:
			t.Fatalf("serve exited %d: %s", code, serveErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", serveErr.String())
		}
	}
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	submit := func(token, src, out string) (int, string) {
		return call("POST", "/v1/batches", token, fmt.Sprintf(`{"sources":[%q],"out":%q,"webhook":%q}`, src, out, hook.URL+"/"+token[:9]))
	}

	// Refused: beta reading alpha's folder, beta writing into alpha's
	// output, a link out of alpha's folder, an s3 prefix not alpha's.
	for _, c := range []struct {
		what, token, src, out, want string
	}{
		{"beta submitting alpha's source", "tok-beta-8d20", alphaSrc, betaOut, "source"},
		{"beta submitting alpha's image folder", "tok-beta-8d20", filepath.Join(alphaSrc, "img"), betaOut, "source"},
		{"beta submitting into alpha's output", "tok-beta-8d20", betaSrc, alphaOut, "out"},
		{"beta submitting into a folder under alpha's output", "tok-beta-8d20", betaSrc, filepath.Join(alphaOut, "x"), "out"},
		{"alpha submitting a link into beta's folder", "tok-alpha-3c1e", filepath.Join(alphaSrc, "to-beta"), alphaOut, "source"},
		{"alpha submitting beta's bucket prefix", "tok-alpha-3c1e", "s3://data/beta/", alphaOut, "source"},
	} {
		code, msg := submit(c.token, c.src, c.out)
		if code != http.StatusForbidden || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s, want 403 about the %s", c.what, code, msg, c.want)
		}
		if strings.Contains(msg, "alpha") && strings.HasPrefix(c.token, "tok-beta") && !strings.Contains(c.src+c.out, "alpha") {
			t.Errorf("%s: the refusal names alpha: %s", c.what, msg)
		}
	}

	// Each tenant's own submit; alpha's first, so its caption is cached
	// when beta's identical image comes.
	waitHook := func(tenant string) tenancyEvent {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			for _, ev := range events {
				if ev.tenant == tenant {
					mu.Unlock()
					return ev
				}
			}
			mu.Unlock()
		}
		t.Fatalf("no webhook of %s; worker: %s", tenant, workErr.String())
		return tenancyEvent{}
	}
	code, msg := submit("tok-alpha-3c1e", alphaSrc, filepath.Join(alphaOut, "run1"))
	if code != http.StatusCreated {
		t.Fatalf("alpha's own submit: %d %s, want 201", code, msg)
	}
	var alphaBatch SubmitID
	_ = json.Unmarshal([]byte(msg), &alphaBatch)
	alphaEv := waitHook("alpha")
	if code, msg := submit("tok-beta-8d20", betaSrc, betaOut); code != http.StatusCreated {
		t.Fatalf("beta's own submit: %d %s, want 201", code, msg)
	}
	betaEv := waitHook("beta")

	// The batch of another tenant stays a 404.
	if code, _ := call("GET", "/v1/batches/"+alphaBatch.ID, "tok-beta-8d20", ""); code != http.StatusNotFound {
		t.Errorf("beta reading alpha's batch: %d, want 404", code)
	}
	if code, _ := call("POST", "/v1/batches/"+alphaBatch.ID+"/retry", "tok-beta-8d20", ""); code != http.StatusNotFound {
		t.Errorf("beta retrying alpha's batch: %d, want 404", code)
	}

	// Webhooks: each signed with its tenant's key only.
	now := time.Now()
	if err := webhook.Verify([]byte(keys["alpha"]), alphaEv.header, alphaEv.body, now, time.Minute); err != nil {
		t.Errorf("alpha's event with alpha's key: %v", err)
	}
	if err := webhook.Verify([]byte(keys["beta"]), alphaEv.header, alphaEv.body, now, time.Minute); err == nil {
		t.Error("beta's key verifies alpha's event")
	}
	if err := webhook.Verify([]byte(global), alphaEv.header, alphaEv.body, now, time.Minute); err == nil {
		t.Error("the global key verifies alpha's event")
	}
	if err := webhook.Verify([]byte(keys["beta"]), betaEv.header, betaEv.body, now, time.Minute); err != nil {
		t.Errorf("beta's event with beta's key: %v", err)
	}

	// Beta's caption of the image alpha also holds: computed for beta,
	// never naming alpha's object.
	var betaCaption string
	_ = filepath.WalkDir(betaOut, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".caption.json") {
			b, _ := os.ReadFile(p)
			betaCaption = string(b)
		}
		return nil
	})
	if betaCaption == "" {
		t.Fatalf("no caption in beta's output; worker: %s", workErr.String())
	}
	if strings.Contains(betaCaption, "alpha") || strings.Contains(betaCaption, "unreleased") || strings.Contains(betaCaption, "duplicate_of") {
		t.Errorf("beta's caption reuses or names alpha's image:\n%s", betaCaption)
	}
	if b, _ := os.ReadFile(alphaManifest); string(b) != `{"item":"earlier"}`+"\n" {
		t.Errorf("alpha's manifest changed: %q", b)
	}
	cancel()
	<-served
	<-worked
	all := serveOut.String() + serveErr.String() + workOut.String() + workErr.String()
	for _, k := range append([]string{global}, keys["alpha"], keys["beta"]) {
		if strings.Contains(all, k) {
			t.Error("a webhook key appears in serve's or the worker's output")
		}
	}
}

// SubmitID is the part of a submit's answer the tests read.
type SubmitID struct {
	ID string `json:"id"`
}

// TestTenantNameAIsRefusedEverywhere: "a:b" (it would collide in Redis
// keys) is refused by the tokens, the tenants file and the CLI.
func TestTenantNameABIsRefusedEverywhere(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	dir := t.TempDir()
	good := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(good, []byte("tenants: {alpha: {share: 1}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tenants: {\"a:b\": {share: 1}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAPITokens, "tok-secret-77 a:b\n")
	code, _, stderr := runCLI(t, "--redis-url", url, "serve", "--listen", "127.0.0.1:0", "--allow", dir)
	if code != exitUsage || !strings.Contains(stderr, "tenant") || strings.Contains(stderr, "tok-secret-77") {
		t.Errorf("serve with a token of tenant a:b: exit %d %q, want a usage error without the token", code, stderr)
	}
	t.Setenv(envAPITokens, "tok-alpha alpha\n")
	if code, _, stderr := runCLI(t, "--redis-url", url, "serve", "--listen", "127.0.0.1:0", "--allow", dir, "--tenants", bad); code != exitUsage || !strings.Contains(stderr, "a:b") {
		t.Errorf("serve with tenant a:b in the tenants file: exit %d %q, want a usage error", code, stderr)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", dir, "--out", t.TempDir(), "--tenant", "a:b"); code != exitUsage || !strings.Contains(stderr, "a:b") {
		t.Errorf("ingest --tenant a:b: exit %d %q, want a usage error", code, stderr)
	}
}
