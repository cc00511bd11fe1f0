package finalize

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

// Each tenant's events are signed with its own key from the tenants file
// (a file it names, relative to the tenants file's folder), a tenant
// without one with the global key; no key reaches the logs or the state.
func TestWebhookIsSignedWithTheTenantsOwnKey(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{"alpha": "alpha-key-0123456789", "beta": "beta-key-9876543210"}
	for n, k := range keys {
		if err := os.WriteFile(filepath.Join(dir, n+".key"), []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tf := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(tf, []byte("tenants:\n  alpha: {webhook_secret_file: alpha.key}\n  beta: {webhook_secret_file: "+
		filepath.Join(dir, "beta.key")+"}\n  gamma: {share: 2}\n  broken: {webhook_secret_file: missing.key}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := tenants.Open(tf, nil)
	if err != nil {
		t.Fatal(err)
	}
	global := []byte("global-key-abcdef")
	type call struct {
		header http.Header
		body   []byte
	}
	var got call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.header = r.Header.Clone()
		got.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	send := func(tenant string) (call, *fakeTracker, error) {
		got = call{}
		b, c, entries := testBatch("file:///out/", srv.URL)
		b.Tenant = tenant
		tr := &fakeTracker{batch: b, counts: c, entries: entries}
		f, _ := newTestFinalizer(t, tr, &fakeEnqueuer{}, Config{WebhookSecret: global,
			Tenants: &tenants.Budgets{File: file}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		task, err := webhook.NewTask(b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got, tr, f.HandleWebhook(context.Background(), task)
	}
	at := created.Add(time.Minute)
	alpha, _, err := send("alpha")
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify([]byte(keys["alpha"]), alpha.header, alpha.body, at, 0); err != nil {
		t.Errorf("alpha's event with alpha's key: %v", err)
	}
	if err := webhook.Verify([]byte(keys["beta"]), alpha.header, alpha.body, at, 0); err == nil {
		t.Error("beta's key verifies alpha's event")
	}
	if err := webhook.Verify(global, alpha.header, alpha.body, at, 0); err == nil {
		t.Error("the global key verifies alpha's event")
	}
	beta, _, err := send("beta")
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify([]byte(keys["beta"]), beta.header, beta.body, at, 0); err != nil {
		t.Errorf("beta's event with beta's key: %v", err)
	}
	if err := webhook.Verify([]byte(keys["alpha"]), beta.header, beta.body, at, 0); err == nil {
		t.Error("alpha's key verifies beta's event")
	}
	for _, name := range []string{"gamma", ""} {
		ev, _, err := send(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := webhook.Verify(global, ev.header, ev.body, at, 0); err != nil {
			t.Errorf("tenant %q without a key of its own: the global key: %v", name, err)
		}
	}
	// An unreadable key file is retried, never signed with another key.
	ev, tr, err := send("broken")
	if err == nil || ev.body != nil {
		t.Errorf("tenant with a missing key file: err %v, sent %q", err, ev.body)
	}
	var state string
	if tr.webhook != nil {
		state = tr.webhook.LastError
	}
	for _, k := range append([]string{string(global)}, keys["alpha"], keys["beta"]) {
		if strings.Contains(logs.String(), k) || strings.Contains(state, k) || (err != nil && strings.Contains(err.Error(), k)) {
			t.Errorf("a webhook key leaked into the logs, the state or an error:\n%s", logs.String())
		}
		if strings.Contains(string(alpha.body)+string(beta.body), k) {
			t.Error("a webhook key leaked into an event")
		}
	}
}
