package dashboard

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserTenantSeesOnlyItsBatch logs in as tenant acme in headless
// Chromium: the batch list shows b-acme and no other batch, the navigation
// has no asynqmon or metrics link, b-acme's page opens, another tenant's
// batch answers 404, and asynqmon answers 403.
func TestBrowserTenantSeesOnlyItsBatch(t *testing.T) {
	f := newRolesFixture(t, nil)
	bctx := newBrowser(t, 40*time.Second, "Bearer "+acmeSecret)

	res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("batch list: HTTP %d", res.Status)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-batch="b-acme"]`))); err != nil {
		t.Fatalf("tenant's batch not shown: %v", err)
	}
	type seen struct {
		Rows    []string
		Links   []string
		Session string
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[seen](`({
		Rows: [...document.querySelectorAll('tr[data-batch]')].map(r => r.dataset.batch),
		Links: [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href')),
		Session: (document.querySelector('nav .who') || {}).innerText || ''})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != 1 || got.Rows[0] != "b-acme" {
		t.Errorf("tenant acme sees batches %v, want only b-acme", got.Rows)
	}
	for _, l := range got.Links {
		if l != "/" {
			t.Errorf("tenant's navigation links %s", l)
		}
	}
	if got.Session != "tina (tenant: acme)" {
		t.Errorf("session shown %q", got.Session)
	}

	for path, want := range map[string]int64{"/batches/b-acme": 200, "/batches/b-globex": 404, "/batches/b-globex/results": 404, "/asynq/": 403} {
		res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+path))
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		if res.Status != want {
			t.Errorf("tenant opens %s: HTTP %d, want %d", path, res.Status, want)
		}
	}
}
