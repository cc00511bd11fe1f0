package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/webhook"
)

func TestWebhookAllowed(t *testing.T) {
	prefixes := []string{"https://hooks.example.com/llamapipe/", "https://api.example.com/hook", "http://127.0.0.1:9000/cb/"}
	for _, tc := range []struct {
		url  string
		want string // "" means allowed; else a part of the error
	}{
		{"https://hooks.example.com/llamapipe/acme", ""},
		{"https://hooks.example.com/llamapipe/acme?x=1#f", ""},
		{"https://HOOKS.example.com:443/llamapipe/acme", ""},
		{"https://api.example.com/hook", ""},
		{"https://api.example.com/hook/x", ""},
		{"http://127.0.0.1:9000/cb/done", ""},
		// The attacks of issue 15 and friends.
		{"https://hooks.example.com/llamapipe/../admin", `".." segments`},
		{"https://hooks.example.com/llamapipe/./x", `".." segments`},
		{"https://hooks.example.com/llamapipe/%2e%2e/admin", "encoded"},
		{"https://hooks.example.com/llamapipe/%2E%2E/admin", "encoded"},
		{"https://hooks.example.com/llamapipe/.%2e/admin", "encoded"},
		{"https://hooks.example.com/llamapipe/..%2fadmin", "encoded"},
		{"https://hooks.example.com/llamapipe%2f..%2fadmin", "encoded"},
		{"https://hooks.example.com/llamapipe/..%5cadmin", "encoded"},
		{`https://hooks.example.com/llamapipe/..\admin`, "encoded"},
		{"https://hooks.example.com/llamapipe", "not under"},
		{"https://hooks.example.com/llamapipe-evil/x", "not under"},
		{"https://api.example.com/hook-evil", "not under"},
		{"https://api.example.com/hookx", "not under"},
		{"https://hooks.example.com.evil.net/llamapipe/x", "not under"},
		{"https://hooks.example.com:8443/llamapipe/x", "not under"},
		{"http://hooks.example.com/llamapipe/x", "not under"},
		{"https://evil.net/llamapipe/x", "not under"},
		{"https://hooks.example.com@evil.net/llamapipe/x", "credentials"},
		{"https://user:secret-pw@hooks.example.com/llamapipe/x", "credentials"},
		{"http://127.0.0.1:9001/cb/done", "not under"},
		{"ftp://hooks.example.com/llamapipe/x", "absolute http"},
		{"/llamapipe/x", "absolute http"},
		{"https:///llamapipe/x", "absolute http"},
		{"https:hooks.example.com/llamapipe/x", "absolute http"},
	} {
		err := webhook.Allowed(tc.url, prefixes)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want allowed", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want refused with %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "secret-pw"):
			t.Errorf("%s: the error repeats the password: %v", tc.url, err)
		}
		if tc.want == "not under" && !errors.Is(err, webhook.ErrNotAllowed) {
			t.Errorf("%s: %v does not wrap ErrWebhookNotAllowed", tc.url, err)
		}
	}
	if err := webhook.Allowed("https://hooks.example.com/x", nil); err == nil {
		t.Error("no prefixes: allowed")
	}
	if err := webhook.Allowed("https://hooks.example.com/x", []string{"https://hooks.example.com/../"}); err == nil {
		t.Error("a bad prefix admits a URL")
	}
}

func TestParseWebhookPrefix(t *testing.T) {
	for _, p := range []string{"https://hooks.example.com/", "http://b.example", "https://h.example:8443/a/b"} {
		if err := webhook.ParsePrefix(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"hooks.example.com", "ftp://h.example/", "https://u:p@h.example/", "https://h.example/a/../b",
		"https://h.example/a?x=1", "https://h.example/a#f", "https://h.example/%2e%2e/"} {
		if err := webhook.ParsePrefix(p); err == nil || !strings.Contains(err.Error(), "webhook prefix") {
			t.Errorf("%s: %v, want refused", p, err)
		}
	}
}
