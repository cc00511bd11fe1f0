package dashboard

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
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

// TestBrowserViewerGetsNoTaskButtons opens asynqmon in headless Chromium
// as a viewer and as an admin: the viewer's queue table has no actions
// column (pause, delete), the admin's has.
func TestBrowserViewerGetsNoTaskButtons(t *testing.T) {
	f := newRolesFixture(t, nil)
	client := asynq.NewClient(f.opt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:item", nil), asynq.Queue("roles-queue")); err != nil {
		t.Fatal(err)
	}
	bctx := newBrowser(t, 60*time.Second, basicAuth("vic", viewerSecret))
	headers := func(auth string) []string {
		t.Helper()
		if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": auth},
		}); err != nil {
			t.Fatal(err)
		}
		res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+AsynqPath+"/"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusOK {
			t.Fatalf("asynqmon: HTTP %d", res.Status)
		}
		table := `table[aria-label="queues overview table"]`
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`(document.querySelector('`+table+`') || {innerText: ''}).innerText.includes('roles-queue')`)); err != nil {
			t.Fatalf("asynqmon does not list roles-queue: %v", err)
		}
		hs, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('`+table+` thead th')].map(th => th.innerText.trim().toLowerCase())`))
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	if hs := headers(basicAuth("vic", viewerSecret)); slices.Contains(hs, "actions") || len(hs) == 0 {
		t.Errorf("viewer's queue table columns %q: want no actions column", hs)
	}
	if hs := headers(basicAuth("ada", adminSecret)); !slices.Contains(hs, "actions") {
		t.Errorf("admin's queue table columns %q: want an actions column", hs)
	}
}
