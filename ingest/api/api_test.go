package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/cancel"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
)

// dbAPI is this package's database on the test Redis.
const dbAPI = 8

const (
	tokenA = "token-of-tenant-a"
	tokenB = "token-of-tenant-b"
)

type env struct {
	t       *testing.T
	srv     *httptest.Server
	api     *Server
	tracker *jobs.Tracker
	insp    *asynq.Inspector
	root    string // allowed; holds src/ and out/
	src     string
	out     string
	url     string // the test Redis
}

func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	url, rdb := jobstest.Redis(t, dbAPI)
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = client.Close(); _ = insp.Close() })
	tracker := jobs.NewTracker(rdb, "")
	root := t.TempDir()
	src, out := filepath.Join(root, "src"), filepath.Join(root, "out")
	for name, body := range map[string]string{
		"contracts/a.txt": "This agreement is made between Acme and Beta. It ends in 2030.",
		"contracts/b.md":  "# Lease\n\nThe tenant pays rent monthly.",
		"empty.txt":       "",
	} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := &ingest.Ingester{
		Open: func(ctx context.Context, loc string) (storage.Store, error) {
			return backends.Open(ctx, loc, backends.Config{})
		},
		Queue: client, Tracker: tracker,
	}
	cancel := func(ctx context.Context, batch string, now time.Time) (int, error) {
		return cancel.Batch(ctx, tracker, insp, client, batch, now)
	}
	cfg := Config{Tracker: tracker, Redis: rdb, Ingester: in, Cancel: cancel, Profiles: testProfiles(offlineProfile),
		Tokens: map[string]string{tokenA: "acme", tokenB: "beta"}, Allow: []string{root}}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: hs, api: s, tracker: tracker, insp: insp, root: root, src: src, out: out, url: url}
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (e *env) do(method, path, token string, body any, hdr map[string]string, out any) int {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %d: decode %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (e *env) submitBody() map[string]any {
	return map[string]any{"sources": []string{e.src}, "out": e.out, "task": "summarize", "language": "de"}
}

func (e *env) submit(token string) SubmitResponse {
	e.t.Helper()
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", token, e.submitBody(), nil, &r); code != http.StatusCreated {
		e.t.Fatalf("submit: %d", code)
	}
	return r
}

func TestSubmitCreatesTenantBatch(t *testing.T) {
	e := newEnv(t)
	r := e.submit(tokenA)
	if r.Total != 3 || r.Enqueued != 2 || r.Skipped != 1 {
		t.Fatalf("submit = %+v, want 3 items: 2 queued, 1 skipped (empty)", r)
	}
	b, err := e.tracker.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Tenant != "acme" || b.Task != "summarize" || b.Options.Language != "de" || b.Out != e.out {
		t.Fatalf("batch = %+v", b)
	}
	pending, err := e.insp.ListPendingTasks("default")
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending tasks = %d, %v; want 2", len(pending), err)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	e := newEnv(t)
	key := map[string]string{"Idempotency-Key": "k-1"}
	var first, again SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &first); code != http.StatusCreated {
		t.Fatalf("first submit: %d", code)
	}
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &again); code != http.StatusOK {
		t.Fatalf("resubmit: %d, want 200", code)
	}
	if again.ID != first.ID || again.Total != first.Total {
		t.Fatalf("resubmit = %+v, first = %+v", again, first)
	}
	// The same key by another tenant is another request.
	var other SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenB, e.submitBody(), key, &other); code != http.StatusCreated || other.ID == first.ID {
		t.Fatalf("other tenant's submit: %d %+v", code, other)
	}
	// The same key with a different body is refused.
	body := e.submitBody()
	body["task"] = "auto"
	if code := e.do("POST", "/v1/batches", tokenA, body, key, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("key reused with another body: %d, want 422", code)
	}
	ids, err := e.tracker.List(context.Background(), 0)
	if err != nil || len(ids) != 2 {
		t.Fatalf("batches = %v, %v; want 2", ids, err)
	}
}

func TestIdempotentConcurrentSubmitsMakeOneBatch(t *testing.T) {
	e := newEnv(t)
	key := map[string]string{"Idempotency-Key": "race"}
	const n = 6
	ids := make([]string, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var r SubmitResponse
			codes[i] = e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &r)
			ids[i] = r.ID
		})
	}
	wg.Wait()
	created := 0
	for i := range n {
		switch codes[i] {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("submit %d: %d", i, codes[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
	if created != 1 {
		t.Fatalf("%d submits created a batch, want 1 (codes %v)", created, codes)
	}
	all, _ := e.tracker.List(context.Background(), 0)
	if len(all) != 1 {
		t.Fatalf("batches = %v, want 1", all)
	}
}

func TestIdempotentRepeatWhileFirstRunsIsConflict(t *testing.T) {
	e := newEnv(t)
	key := map[string]string{"Idempotency-Key": "slow"}
	var first SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &first); code != http.StatusCreated {
		t.Fatalf("first submit: %d", code)
	}
	// Make the record look like a first request still running.
	ctx := context.Background()
	rkey := "llamapipe:api:idempotency:acme:slow"
	var rec idemRecord
	raw, err := e.api.cfg.Redis.Get(ctx, rkey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Response == nil || rec.ID != first.ID {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if ttl := e.api.cfg.Redis.TTL(ctx, rkey).Val(); ttl <= IdempotencyTTL-time.Hour || ttl > IdempotencyTTL {
		t.Fatalf("answered key TTL = %v, want about %v", ttl, IdempotencyTTL)
	}
	rec.Response = nil
	pending, _ := json.Marshal(rec)
	e.api.cfg.Redis.Set(ctx, rkey, pending, time.Hour)
	e.api.cfg.IdempotencyWait = time.Millisecond
	var er struct{ Error string }
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &er); code != http.StatusConflict || !strings.Contains(er.Error, "still running") {
		t.Fatalf("repeat while the first runs: %d %q, want 409", code, er.Error)
	}
	// A failed first request frees the key (here: removed), and a repeat then says so.
	e.api.cfg.Redis.Del(ctx, rkey)
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, nil); code != http.StatusCreated {
		t.Fatalf("submit after the key was freed: %d, want 201", code)
	}
}

func TestFailedSubmitFreesIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	key := map[string]string{"Idempotency-Key": "k"}
	open := e.api.cfg.Ingester.Open
	e.api.cfg.Ingester.Open = func(ctx context.Context, loc string) (storage.Store, error) {
		return nil, fmt.Errorf("open %s: %w", loc, storage.ErrNotExist)
	}
	var er struct{ Error string }
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, "does not exist") {
		t.Fatalf("submit whose source cannot be opened: %d %q, want 400", code, er.Error)
	}
	if n := e.api.cfg.Redis.Exists(context.Background(), "llamapipe:api:idempotency:acme:k").Val(); n != 0 {
		t.Fatal("a failed submit kept its Idempotency-Key")
	}
	e.api.cfg.Ingester.Open = open
	if code := e.do("POST", "/v1/batches", tokenA, e.submitBody(), key, nil); code != http.StatusCreated {
		t.Fatalf("repeat after the failure: %d, want 201", code)
	}
}

func TestListDetailItems(t *testing.T) {
	e := newEnv(t)
	first := e.submit(tokenA)
	second := e.submit(tokenA)
	e.submit(tokenB)

	var list struct{ Batches []BatchView }
	if code := e.do("GET", "/v1/batches", tokenA, nil, nil, &list); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(list.Batches) != 2 || list.Batches[0].ID != second.ID || list.Batches[1].ID != first.ID {
		t.Fatalf("list = %+v, want [%s %s]", list.Batches, second.ID, first.ID)
	}
	if code := e.do("GET", "/v1/batches?limit=1", tokenA, nil, nil, &list); code != http.StatusOK || len(list.Batches) != 1 {
		t.Fatalf("limit=1: %d %d batches", code, len(list.Batches))
	}

	var v BatchView
	if code := e.do("GET", "/v1/batches/"+first.ID, tokenA, nil, nil, &v); code != http.StatusOK {
		t.Fatalf("detail: %d", code)
	}
	if v.ID != first.ID || v.Counts.Total != 3 || v.Counts.Skipped != 1 || v.State != "running" ||
		v.Manifest != e.out+"/batches/"+first.ID+"/manifest.jsonl" || v.Report != e.out+"/batches/"+first.ID+"/report.md" {
		t.Fatalf("detail = %+v", v)
	}

	var items struct {
		Items         []jobs.Entry
		Page, PerPage int
		Total         int
	}
	if code := e.do("GET", "/v1/batches/"+first.ID+"/items?status=skipped", tokenA, nil, nil, &items); code != http.StatusOK {
		t.Fatalf("items: %d", code)
	}
	if items.Total != 1 || len(items.Items) != 1 || !strings.Contains(items.Items[0].Error, "empty") {
		t.Fatalf("skipped items = %+v", items)
	}
	if code := e.do("GET", "/v1/batches/"+first.ID+"/items?status=failed", tokenA, nil, nil, &items); code != http.StatusOK || items.Total != 0 {
		t.Fatalf("failed items: %d %+v", code, items)
	}
	if code := e.do("GET", "/v1/batches/"+first.ID+"/items?status=weird", tokenA, nil, nil, nil); code != http.StatusBadRequest {
		t.Fatalf("bad status filter: %d", code)
	}
}

func TestItemsPaging(t *testing.T) {
	e := newEnv(t)
	r := e.submit(tokenA)
	// Cancel to give every item an entry.
	if code := e.do("POST", "/v1/batches/"+r.ID+"/cancel", tokenA, nil, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	var seen []string
	for page := 1; page <= 3; page++ {
		var items struct {
			Items []jobs.Entry
			Total int
		}
		code := e.do("GET", fmt.Sprintf("/v1/batches/%s/items?page=%d&per_page=2", r.ID, page), tokenA, nil, nil, &items)
		if code != http.StatusOK || items.Total != 3 {
			t.Fatalf("page %d: %d total %d", page, code, items.Total)
		}
		for _, it := range items.Items {
			seen = append(seen, it.Source)
		}
	}
	// Pages come in the items hash's order (O(page), not sorted).
	sort.Strings(seen)
	if len(seen) != 3 || seen[0] == seen[1] || seen[1] == seen[2] {
		t.Fatalf("pages gave %v, want 3 sources once each", seen)
	}
}

func TestOtherTenantsBatchIsNotFound(t *testing.T) {
	e := newEnv(t)
	r := e.submit(tokenA)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/batches/" + r.ID},
		{"GET", "/v1/batches/" + r.ID + "/items"},
		{"POST", "/v1/batches/" + r.ID + "/cancel"},
		{"POST", "/v1/batches/" + r.ID + "/retry"},
	} {
		var er struct{ Error string }
		if code := e.do(c.method, c.path, tokenB, nil, nil, &er); code != http.StatusNotFound || er.Error == "" {
			t.Errorf("%s %s as another tenant: %d %q, want 404", c.method, c.path, code, er.Error)
		}
	}
	if c, _ := e.tracker.Counts(context.Background(), r.ID); c.CancelRequested {
		t.Fatal("another tenant cancelled the batch")
	}
	var list struct{ Batches []BatchView }
	if code := e.do("GET", "/v1/batches", tokenB, nil, nil, &list); code != http.StatusOK || len(list.Batches) != 0 {
		t.Fatalf("tenant b lists %d batches (%d), want 0", len(list.Batches), code)
	}
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t)
	for _, tok := range []string{"", "wrong-token", tokenA + "x"} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/batches"}, {"POST", "/v1/batches"}, {"GET", "/v1/batches/x"}, {"GET", "/v1/nothing"},
		} {
			var er struct{ Error string }
			if code := e.do(c.method, c.path, tok, nil, nil, &er); code != http.StatusUnauthorized || er.Error == "" {
				t.Errorf("%s %s with token %q: %d, want 401", c.method, c.path, tok, code)
			}
		}
	}
	if code := e.do("GET", "/v1/openapi.yaml", "", nil, nil, nil); code != http.StatusOK {
		t.Errorf("openapi.yaml without token: %d, want 200", code)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(e.root, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.src, filepath.Join(e.root, "link-src")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown task", func(m map[string]any) { m["task"] = "translate" }, "unknown task"},
		{"unknown queue", func(m map[string]any) { m["queue"] = "urgent" }, "unknown queue"},
		{"no sources", func(m map[string]any) { m["sources"] = []string{} }, "no sources"},
		{"no out", func(m map[string]any) { delete(m, "out") }, "no output"},
		{"source outside", func(m map[string]any) { m["sources"] = []string{outside} }, "not under an allowed source"},
		{"source sibling prefix", func(m map[string]any) { m["sources"] = []string{e.root + "x"} }, "not under an allowed source"},
		{"source dot-dot", func(m map[string]any) { m["sources"] = []string{e.root + "/../etc"} }, "not under an allowed source"},
		{"source through a link", func(m map[string]any) { m["sources"] = []string{e.root + "/link-out"} }, "not under an allowed source"},
		{"out through a link", func(m map[string]any) { m["out"] = e.root + "/link-out/new/results" }, "not under an allowed output"},
		{"out through a link into the source", func(m map[string]any) { m["out"] = e.root + "/link-src/results" }, "overlaps"},
		{"source bucket", func(m map[string]any) { m["sources"] = []string{"s3://secrets/all"} }, "not under an allowed source"},
		{"relative source", func(m map[string]any) { m["sources"] = []string{"src"} }, "absolute path"},
		{"out outside", func(m map[string]any) { m["out"] = outside }, "not under an allowed output"},
		{"out is source", func(m map[string]any) { m["out"] = e.src }, "overlaps"},
		{"out inside source", func(m map[string]any) { m["out"] = e.src + "/results" }, "overlaps"},
		{"source inside out", func(m map[string]any) { m["out"] = e.root }, "overlaps"},
		{"bad glob", func(m map[string]any) { m["include"] = []string{"[a"} }, "bad glob"},
		{"bad language", func(m map[string]any) { m["language"] = "../x" }, "language"},
		{"unknown field", func(m map[string]any) { m["provider"] = "openai" }, "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := e.submitBody()
			c.edit(m)
			var er struct{ Error string }
			if code := e.do("POST", "/v1/batches", tokenA, m, nil, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, c.want) {
				t.Fatalf("%d %q, want 400 containing %q", code, er.Error, c.want)
			}
		})
	}
	for name, body := range map[string]string{"not json": "sources=x", "two objects": `{"sources":["/a"]}{}`, "empty": ""} {
		if code := e.do("POST", "/v1/batches", tokenA, body, nil, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if ids, _ := e.tracker.List(context.Background(), 0); len(ids) != 0 {
		t.Fatalf("invalid submits created batches %v", ids)
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	big := fmt.Sprintf(`{"sources":["%s"],"out":"%s","task":"%s"}`, e.src, e.out, strings.Repeat("a", MaxBody))
	var er struct{ Error string }
	if code := e.do("POST", "/v1/batches", tokenA, big, nil, &er); code != http.StatusRequestEntityTooLarge || er.Error == "" {
		t.Fatalf("big body: %d %q, want 413", code, er.Error)
	}
}

func TestCancelAndRetryRoundTrip(t *testing.T) {
	e := newEnv(t)
	r := e.submit(tokenA)
	// Nothing failed yet: nothing to retry.
	if code := e.do("POST", "/v1/batches/"+r.ID+"/retry", tokenA, nil, nil, nil); code != http.StatusConflict {
		t.Fatalf("retry before anything failed: %d, want 409", code)
	}
	var c struct {
		ID      string
		Removed int
		Batch   BatchView
	}
	if code := e.do("POST", "/v1/batches/"+r.ID+"/cancel", tokenA, nil, nil, &c); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if c.Removed != 2 || c.Batch.Counts.Cancelled != 2 || !c.Batch.Counts.CancelRequested {
		t.Fatalf("cancel = %+v", c)
	}
	var items struct{ Total int }
	if e.do("GET", "/v1/batches/"+r.ID+"/items?status=cancelled", tokenA, nil, nil, &items); items.Total != 2 {
		t.Fatalf("cancelled items = %d, want 2", items.Total)
	}
	if code := e.do("POST", "/v1/batches/"+r.ID+"/retry", tokenA, RetryRequest{}, nil, nil); code != http.StatusConflict {
		t.Fatalf("retry of failed items only: %d, want 409 (none failed)", code)
	}
	key := map[string]string{"Idempotency-Key": "retry-1"}
	var rr, again SubmitResponse
	if code := e.do("POST", "/v1/batches/"+r.ID+"/retry", tokenA, RetryRequest{Cancelled: true}, key, &rr); code != http.StatusCreated {
		t.Fatalf("retry cancelled: %d", code)
	}
	if rr.ID == "" || rr.ID == r.ID || rr.Total != 2 || rr.RetryOf != r.ID {
		t.Fatalf("retry = %+v", rr)
	}
	if code := e.do("POST", "/v1/batches/"+r.ID+"/retry", tokenA, RetryRequest{Cancelled: true}, key, &again); code != http.StatusOK || again.ID != rr.ID {
		t.Fatalf("idempotent retry: %d %+v", code, again)
	}
	var v BatchView
	if code := e.do("GET", "/v1/batches/"+rr.ID, tokenA, nil, nil, &v); code != http.StatusOK {
		t.Fatalf("retry batch detail: %d", code)
	}
	if v.RetryOf != r.ID || v.Tenant != "acme" || v.Counts.Total != 2 {
		t.Fatalf("retry batch = %+v", v)
	}
}

func TestNewRefusesNoTokens(t *testing.T) {
	_, err := New(Config{Tracker: &jobs.Tracker{}, Redis: nil})
	if err == nil {
		t.Fatal("New without dependencies succeeded")
	}
	_, err = newAuthenticator(nil)
	if err != ErrNoTokens {
		t.Fatalf("no tokens: %v, want ErrNoTokens", err)
	}
}

func TestParseTokens(t *testing.T) {
	m, err := ParseTokens(strings.NewReader("# comment\n\nt1 acme\n  t2\tbeta  \n"), "file")
	if err != nil || len(m) != 2 || m["t1"] != "acme" || m["t2"] != "beta" {
		t.Fatalf("ParseTokens = %v, %v", m, err)
	}
	for _, bad := range []string{"lonely-token\n", "t1 a b\n", "t1 a\nt1 b\n"} {
		_, err := ParseTokens(strings.NewReader(bad), "file")
		if err == nil {
			t.Errorf("ParseTokens(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "t1") || strings.Contains(err.Error(), "lonely") {
			t.Errorf("error shows a token: %v", err)
		}
	}
}

func TestWithin(t *testing.T) {
	loc := func(s string) storage.Location {
		l, err := storage.ParseLocation(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, c := range []struct {
		l, p string
		want bool
	}{
		{"s3://b/in/x", "s3://b/in", true},
		{"s3://b/in", "s3://b/in", true},
		{"s3://b/inbox", "s3://b/in", false},
		{"s3://b/any", "s3://b", true},
		{"s3://c/in", "s3://b/in", false},
		{"/data/in/x", "/data/in", true},
		{"/data/inbox", "/data/in", false},
		{"/data/in/../x", "/data/in", false},
		{"/anything", "/", true},
		{"s3://b/in", "/", false},
	} {
		if got := within(loc(c.l), loc(c.p)); got != c.want {
			t.Errorf("within(%s, %s) = %v, want %v", c.l, c.p, got, c.want)
		}
	}
}

// TestOpenAPIMatchesServer checks that every operation of the document is
// served and every served route is documented.
func TestOpenAPIMatchesServer(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var served []byte
	e.do("GET", "/v1/openapi.yaml", "", nil, nil, nil)
	resp, err := http.Get(e.srv.URL + "/v1/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	served, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(served, OpenAPI) {
		t.Fatal("/v1/openapi.yaml does not serve the embedded document")
	}

	r := e.submit(tokenA)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			m := strings.ToUpper(method)
			documented[m+" "+path] = true
			url := strings.ReplaceAll(path, "{id}", r.ID)
			var body any
			if m == "POST" && path == "/v1/batches" {
				body = e.submitBody()
			}
			code := e.do(m, url, tokenA, body, nil, nil)
			if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
				t.Errorf("documented %s %s is not served: %d", m, path, code)
			}
		}
	}
	for _, route := range e.api.Routes() {
		if !documented[route] {
			t.Errorf("served route %s is not in openapi.yaml", route)
		}
	}
	if len(documented) != len(e.api.Routes()) {
		t.Errorf("%d documented operations, %d served routes", len(documented), len(e.api.Routes()))
	}
	// A route that is not documented is not served either.
	if code := e.do("DELETE", "/v1/batches/"+r.ID, tokenA, nil, nil, nil); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
		t.Errorf("DELETE a batch: %d, want 404 or 405", code)
	}
}
