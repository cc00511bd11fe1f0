package dashboard

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
)

// chromiumPath finds Debian's chromium (`make test` installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run the tests with `make test` (it installs Debian's chromium package)")
	return ""
}

// TestBrowserShowsBatchAndAsynqmon opens the dashboard in headless Chromium:
// the batch page shows the running batch's progress, asynqmon's page
// renders, and the browser without credentials gets 401.
func TestBrowserShowsBatchAndAsynqmon(t *testing.T) {
	f := newFixture(t, nil)
	exe := chromiumPath(t)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// No test reaches the internet: asynqmon links Google fonts, so
		// every name but the loopback test server fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Without credentials: /healthz opens, and the page's own request for
	// the batch page gets 401 with a challenge. (Navigating to it would
	// stop at the browser's basic-auth prompt.)
	res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+"/healthz"))
	if err != nil {
		t.Fatalf("open /healthz: %v", err)
	}
	if res.Status != http.StatusOK {
		t.Errorf("/healthz without credentials: HTTP %d, want 200", res.Status)
	}
	type answer struct {
		Status    int
		Challenge string
	}
	anon, err := chromedp.Run(bctx, chromedp.Evaluate[answer](`fetch('/', {credentials: 'omit'}).then(r => ({Status: r.status, Challenge: r.headers.get('WWW-Authenticate') || ''}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if anon.Status != http.StatusUnauthorized || !strings.Contains(anon.Challenge, "realm=") {
		t.Errorf("browser request without credentials: %+v, want 401 with a challenge", anon)
	}

	// With a bearer token on every request (page and asynqmon's API calls).
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + testToken},
	}); err != nil {
		t.Fatal(err)
	}
	res, err = chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("batch page: HTTP %d", res.Status)
	}
	row := `tr[data-batch="` + f.batch + `"]`
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("batch row not shown: %v", err)
	}
	type bar struct {
		Value, Max float64
		Text       string
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[bar](`(() => {
		const r = document.querySelector('`+row+`');
		const p = r.querySelector('progress');
		return {Value: p.value, Max: p.max, Text: r.querySelector('.progress-text').innerText};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != 7 || got.Max != 10 || !strings.Contains(got.Text, "7 / 10") {
		t.Errorf("progress shown %+v, want 7 of 10", got)
	}

	// asynqmon: its page loads, its React app renders into #root, and its
	// queue list (fetched from its API, behind our auth) shows our queue.
	client := asynq.NewClient(f.opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:item", nil), asynq.Queue("browser-queue")); err != nil {
		t.Fatal(err)
	}
	res, err = chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+AsynqPath+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("asynqmon: HTTP %d", res.Status)
	}
	if err := chromedp.Do(bctx, chromedp.WaitReady(chromedp.CSS(`#root > *`))); err != nil {
		t.Fatalf("asynqmon did not render: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById('root').innerText.includes('browser-queue')`)); err != nil {
		t.Fatalf("asynqmon does not list the queue browser-queue: %v", err)
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "Asynq") {
		t.Errorf("asynqmon title %q", title)
	}
}
