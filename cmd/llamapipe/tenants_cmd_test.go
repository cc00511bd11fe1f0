package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func TestIngestRefusesABatchOverItsTenantsBudget(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(strings.Repeat("A contract between A and B. ", 50)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tenants: {legal: {budget: {daily: {tokens: 10}}}}")
	code, stdout, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--tenant", "legal", "--tenants", file)
	if code != exitRefused || stdout != "" {
		t.Fatalf("exit %d, stdout %q: want 3 (refused before start) and nothing queued", code, stdout)
	}
	stderr = strings.ReplaceAll(stderr, `\"`, `"`) // a JSON record off a terminal
	for _, want := range []string{`tenant "legal"`, "estimated", "remaining daily budget of 10 tokens"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("refusal %q does not say %q", stderr, want)
		}
	}
	// Another tenant (the default: no budget) and a raised budget pass.
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--tenant", "other", "--tenants", file); code != 0 {
		t.Fatalf("tenant without a budget: exit %d: %s", code, stderr)
	}
	write("tenants: {legal: {budget: {daily: {tokens: 10000000}}}}")
	t.Setenv("LLAMAPIPE_TENANT", "legal")
	t.Setenv("LLAMAPIPE_TENANTS", file)
	code, stdout, stderr = runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("raised budget: exit %d: %s", code, stderr)
	}
	code, out, _ := runCLI(t, "--redis-url", url, "status", strings.TrimSpace(stdout))
	if code != 0 || !strings.Contains(out, "tenant legal: today 0.00 and 0 tokens (10000000 of 10000000 tokens left)") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	if code, _, stderr := runCLI(t, "--redis-url", url, "ingest", src, "--out", t.TempDir(), "--tenant", "no spaces"); code != exitUsage || !strings.Contains(stderr, "--tenant") {
		t.Errorf("bad tenant name: exit %d, %q", code, stderr)
	}
}

// `serve --tenants` refuses a submit over its tenant's budget with 402.
func TestServeRefusesASubmitOverBudget(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte(strings.Repeat("A contract between A and B. ", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	// Its locations are the default's (a tenants file without any denies every submit).
	if err := os.WriteFile(file, fmt.Appendf(nil, "tenants: {legal: {budget: {daily: {tokens: 10}}}}\ndefault: {sources: [%q], outputs: [%q]}\n", src, out), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAPITokens, "tok-legal legal\n")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serveRoot(&stdout, &stderr).Run(ctx, []string{"llamapipe", "--redis-url", url, "serve", "--listen", "127.0.0.1:0",
			"--allow", src, "--allow-out", out, "--tenants", file})
	}()
	urlRe := regexp.MustCompile(`api on (http://127\.0\.0\.1:\d+)/v1/`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := urlRe.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", stderr.String())
		}
	}
	body := fmt.Sprintf(`{"sources":[%q],"out":%q}`, src, out)
	req, _ := http.NewRequest("POST", base+"/v1/batches", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok-legal")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPaymentRequired || !strings.Contains(string(msg), "legal") {
		t.Errorf("submit over budget: %d %s, want 402 naming the tenant", res.StatusCode, msg)
	}
	cancel()
	<-done
}

func TestPlanComparesWithTheTenantsBudget(t *testing.T) {
	url, _ := jobstest.Redis(t, jobstest.DBCmd)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte(strings.Repeat("A contract between A and B. ", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(file, []byte("tenants: {legal: {budget: {daily: {tokens: 10}}}, big: {budget: {daily: {tokens: 100000000}}}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "--redis-url", url, "plan", src, "--tenant", "legal", "--tenants", file)
	if code != 0 || !strings.Contains(out, "Tenant legal:") || !strings.Contains(out, "Over budget:") {
		t.Errorf("plan for a small budget: exit %d:\n%s%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "--redis-url", url, "plan", src, "--tenant", "big", "--tenants", file)
	if code != 0 || !strings.Contains(out, "Within budget.") {
		t.Errorf("plan for a large budget: exit %d:\n%s", code, out)
	}
}
