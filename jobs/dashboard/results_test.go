package dashboard

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

const resultsBatch = "b-results"

// newResultsFixture is the dashboard fixture with the results view on local
// storage and batch b-results: 26 captioned PNGs (one flagged blurry) and
// one summarized contract whose digest has two quotes found and one not.
func newResultsFixture(t *testing.T) *fixture {
	t.Helper()
	src, out := t.TempDir(), t.TempDir()
	f := newFixture(t, func(c *Config) {
		c.Open = func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }
	})
	ctx := context.Background()
	if err := f.tracker.Create(ctx, jobs.Batch{ID: resultsBatch, Created: time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC),
		Spec: jobs.Spec{Task: jobs.TaskAuto, Queue: jobs.QueueDefault, Sources: []string{src}, Out: out}}); err != nil {
		t.Fatal(err)
	}
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 26 {
		img := image.NewRGBA(image.Rect(0, 0, 40, 30))
		for y := range 30 {
			for x := range 40 {
				img.Set(x, y, color.RGBA{R: byte(i * 9), G: 90, B: 200, A: 255})
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("mug-%02d.png", i)
		write(filepath.Join(src, key), buf.Bytes())
		write(filepath.Join(out, key+".caption.json"), fmt.Appendf(nil, `{"title":"Mug %02d","alt_text":"Blue mug number %02d","tags":["mug","kitchen"],
			"quality":{"blurry":%v,"watermark":false},"meta":{"model":"m"}}`, i, i, i == 0))
		if _, _, err := f.tracker.Record(ctx, resultsBatch, jobs.Entry{Item: fmt.Sprintf("img-%02d", i), Source: src + "/" + key, Key: key,
			Kind: jobs.KindImage, Status: jobs.StatusDone, Results: []string{key + ".caption.json"}}); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "lease.pdf"), []byte("%PDF-1.4"))
	write(filepath.Join(out, "lease.pdf.summary.json"), []byte(`{"document_type":"lease","executive_summary":"A lease of a <b>shop</b>.",
		"parties":[{"name":"Acme Ltd","role":"landlord","quote":"Acme Ltd (the Landlord)","pages":[1],"verified":true,"check":"found"}],
		"term":{"value":"Five years","quote":"for a term of five years","pages":[2],"verified":true,"check":"found"},
		"payment_terms":{"value":"Rent in unicorns","quote":"rent is payable in unicorns","pages":[3],"verified":false,"check":"not_found","flagged":true},
		"confidentiality":{"value":"","quote":"","pages":[]},
		"quote_check":{"quotes":3,"verified":2,"unverified":1,"unverifiable":0,"summary":"2 of 3 quotes found on their pages"},"meta":{"model":"m"}}`))
	if _, _, err := f.tracker.Record(ctx, resultsBatch, jobs.Entry{Item: "doc-lease", Source: src + "/lease.pdf", Key: "lease.pdf",
		Kind: jobs.KindDocument, Status: jobs.StatusDone, Results: []string{"lease.pdf.summary.json", "lease.pdf.summary.md"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tracker.Seal(ctx, resultsBatch, 27); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestResultsViewGuardsItsRoutes(t *testing.T) {
	f := newResultsFixture(t)
	base := "/batches/" + resultsBatch
	for _, c := range []struct {
		path, auth string
		want       int
		body       string
	}{
		{base + "/results", "", http.StatusUnauthorized, ""},
		{base + "/image?item=img-00", "", http.StatusUnauthorized, ""},
		{base + "/results", "bearer", http.StatusOK, "Blue mug number 00"},
		{base + "/results?page=2", "basic", http.StatusOK, "Blue mug number 25"},
		{base + "/image?item=img-03", "bearer", http.StatusOK, "\x89PNG"},
		{base + "/image?item=doc-lease", "bearer", http.StatusNotFound, "no such image"},          // a document is not served
		{"/batches/b-progress/image?item=img-03", "bearer", http.StatusNotFound, "no such image"}, // another batch's item
		{base + "/doc?item=doc-lease", "bearer", http.StatusOK, "rent is payable in unicorns"},
		{base + "/doc?item=img-01", "bearer", http.StatusNotFound, "no digest"},
		{"/batches/nope/results", "bearer", http.StatusNotFound, "no such batch"},
	} {
		resp, body := f.do(t, "GET", c.path, c.auth, nil)
		if resp.StatusCode != c.want || !strings.Contains(body, c.body) {
			t.Errorf("%s (%q): HTTP %d, want %d with %q", c.path, c.auth, resp.StatusCode, c.want, c.body)
		}
	}
	// Page 1 has 24 results and page 2 the other 3, each once.
	_, p1 := f.do(t, "GET", base+"/results", "bearer", nil)
	_, p2 := f.do(t, "GET", base+"/results?page=2", "bearer", nil)
	if n1, n2 := strings.Count(p1, `class="card"`)+strings.Count(p1, `class="doc"`), strings.Count(p2, `class="card"`)+strings.Count(p2, `class="doc"`); n1 != 24 || n2 != 3 {
		t.Errorf("pages hold %d and %d results, want 24 and 3", n1, n2)
	}
	// The digest's text is escaped, never markup.
	if _, body := f.do(t, "GET", base+"/doc?item=doc-lease", "bearer", nil); strings.Contains(body, "<b>shop</b>") {
		t.Error("digest text rendered as HTML")
	}
	if _, body := f.do(t, "GET", base, "bearer", nil); !strings.Contains(body, base+"/results") {
		t.Error("the batch page does not link its results")
	}
}

// TestBrowserShowsResults opens the results view in headless Chromium: the
// gallery's thumbnails load through the dashboard (behind its bearer
// token) with their alt text, tags and flags, the next page holds the
// rest, and the digest page shows each field's quote, its pages and
// whether it was found there.
func TestBrowserShowsResults(t *testing.T) {
	f := newResultsFixture(t)
	exe := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"), chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + testToken},
	}); err != nil {
		t.Fatal(err)
	}
	base := f.srv.URL + "/batches/" + resultsBatch
	res, err := chromedp.Run(bctx, chromedp.NavigateResponse(base+"/results"))
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("results page: %v %+v", err, res)
	}
	type card struct {
		Alt, Tags, Flags string
		Width            int
	}
	type gallery struct {
		Cards []card
		Docs  []string
		Next  string
	}
	// Every thumbnail loaded (naturalWidth is the PNG's 40 px).
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)`)); err != nil {
		t.Fatalf("thumbnails did not load: %v", err)
	}
	g, err := chromedp.Run(bctx, chromedp.Evaluate[gallery](`({
		Cards: [...document.querySelectorAll('.card')].map(c => ({Alt: c.querySelector('img').alt, Width: c.querySelector('img').naturalWidth,
			Tags: c.querySelector('.tags').innerText, Flags: c.querySelector('.flags') ? c.querySelector('.flags').innerText : ''})),
		Docs: [...document.querySelectorAll('a.doc')].map(a => a.getAttribute('href')),
		Next: document.querySelector('a.next') ? document.querySelector('a.next').href : ''})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Cards)+len(g.Docs) != 24 || g.Next == "" {
		t.Fatalf("page 1: %d images, %d documents, next %q", len(g.Cards), len(g.Docs), g.Next)
	}
	flagged := 0
	for _, c := range g.Cards {
		if c.Width != 40 || !strings.HasPrefix(c.Alt, "Blue mug number ") || !strings.Contains(c.Tags, "kitchen") {
			t.Errorf("card %+v", c)
		}
		if strings.Contains(c.Flags, "blurry") {
			flagged++
		}
	}
	if flagged != 1 {
		t.Errorf("%d cards flagged blurry, want 1", flagged)
	}
	if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.Next)); err != nil {
		t.Fatal(err)
	}
	g2, err := chromedp.Run(bctx, chromedp.Evaluate[gallery](`({Cards: [...document.querySelectorAll('.card')].map(c => ({Alt: c.querySelector('img').alt})),
		Docs: [...document.querySelectorAll('a.doc')].map(a => a.getAttribute('href'))})`))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Cards)+len(g2.Cards) != 26 || len(g.Docs)+len(g2.Docs) != 1 {
		t.Fatalf("pages 1 and 2 show %d images and %d documents, want 26 and 1", len(g.Cards)+len(g2.Cards), len(g.Docs)+len(g2.Docs))
	}
	docHref := append(g.Docs, g2.Docs...)[0]
	if res, err := chromedp.Run(bctx, chromedp.NavigateResponse(f.srv.URL+docHref)); err != nil || res.Status != http.StatusOK {
		body, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("digest page %s: %v %+v\n%s", docHref, err, res, body)
	}
	type fact struct{ Field, Quote, Pages, Check string }
	type digest struct {
		Quotes string
		Facts  []fact
		Fields []string
	}
	d, err := chromedp.Run(bctx, chromedp.Evaluate[digest](`({
		Quotes: document.querySelector('.quotes').innerText,
		Fields: [...document.querySelectorAll('section.field h2')].map(h => h.innerText),
		Facts: [...document.querySelectorAll('section.field')].flatMap(s => [...s.querySelectorAll('blockquote')].map(b => ({
			Field: s.querySelector('h2').innerText, Quote: b.childNodes[0].textContent.trim(),
			Pages: b.querySelector('.pages') ? b.querySelector('.pages').innerText : '', Check: b.querySelector('.check').className})))})`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Quotes, "2 of 3 quotes found on their pages") || !strings.Contains(d.Quotes, "1 not found") {
		t.Errorf("quote counts %q", d.Quotes)
	}
	want := map[string]fact{
		"Parties":       {"Parties", "“Acme Ltd (the Landlord)”", "1", "check found"},
		"Term":          {"Term", "“for a term of five years”", "2", "check found"},
		"Payment terms": {"Payment terms", "“rent is payable in unicorns”", "3", "check not_found"},
	}
	if len(d.Facts) != len(want) {
		t.Errorf("facts shown %+v", d.Facts)
	}
	for _, got := range d.Facts {
		if got != want[got.Field] {
			t.Errorf("fact %+v, want %+v", got, want[got.Field])
		}
	}
	if strings.Contains(strings.Join(d.Fields, ","), "Confidentiality") {
		t.Errorf("an empty field is shown: %v", d.Fields)
	}
}

// A large photo is served to the gallery as a thumbnail, not as it is; a
// small one is served unchanged; what is not an image is refused.
func TestThumbnail(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1600, 900))
	for y := range 900 {
		for x := range 1600 {
			img.Set(x, y, color.RGBA{uint8(x * y), uint8(x ^ y), uint8(x + 3*y), 255}) // busy: a large PNG
		}
	}
	var big bytes.Buffer
	if err := png.Encode(&big, img); err != nil {
		t.Fatal(err)
	}
	out, ctype, ok := thumbnail(big.Bytes())
	if !ok || ctype != "image/jpeg" {
		t.Fatalf("a 1600×900 PNG: ok %v, type %q", ok, ctype)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(out))
	if err != nil || format != "jpeg" || cfg.Width != thumbSide || cfg.Height != 180 || len(out) >= big.Len() {
		t.Errorf("thumbnail %dx%d %s (%d bytes of %d), %v; want %dx180 JPEG, smaller", cfg.Width, cfg.Height, format, len(out), big.Len(), err, thumbSide)
	}
	var small bytes.Buffer
	if err := png.Encode(&small, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := thumbnail(small.Bytes()); ok {
		t.Error("a 40×30 image was scaled: it is served as it is")
	}
	if _, _, ok := thumbnail([]byte("not an image")); ok {
		t.Error("text made a thumbnail")
	}
	// A header that declares more pixels than thumbMaxPixels is refused
	// before any pixel buffer exists.
	bomb := append([]byte(nil), small.Bytes()...)
	binary.BigEndian.PutUint32(bomb[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(bomb[20:], 100000) // IHDR height
	if _, _, ok := thumbnail(bomb); ok {
		t.Error("a 100000×100000 header was decoded")
	}
}
