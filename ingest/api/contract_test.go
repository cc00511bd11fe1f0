package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/llamapipe/llamapipe/ingest/api/apiclienttest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/outage"
)

// contract checks every request sent through it, and the server's answer,
// against openapi.yaml with kin-openapi: the document must describe what
// the server really does, not only which paths exist.
type contract struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper
	mu     sync.Mutex
	seen   map[string]bool // "operationId status" checked
}

func newContract(t *testing.T, serverURL string) *contract {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI: %v", err)
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			if op.Security == nil || len(*op.Security) > 0 { // authenticated
				if op.Responses.Value("401") == nil || op.Responses.Value("500") == nil {
					t.Errorf("%s %s does not declare its 401 and 500 answers", method, path)
				}
			}
		}
	}
	if doc.Info.License == nil || doc.Info.License.Name == "" {
		t.Error("openapi.yaml names no licence")
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, router: router, next: http.DefaultTransport, seen: map[string]bool{}}
}

func (c *contract) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s: not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return c.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	in := &openapi3filter.RequestValidationInput{Request: req.Clone(req.Context()), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	in.Request.Body = io.NopCloser(bytes.NewReader(body))
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if reqErr != nil && resp.StatusCode < 400 {
		c.t.Errorf("%s %s: the server took a request the document forbids: %v", req.Method, req.URL.Path, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(raw)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		c.t.Errorf("%s %s answered %d, not as openapi.yaml says: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, raw)
	}
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)] = true
	c.mu.Unlock()
	return resp, nil
}

// TestAnswersMatchOpenAPI drives the server through the client generated
// from openapi.yaml (apiclienttest, oapi-codegen): submit a batch and follow
// it (state, items), list, cancel and retry, and the error answers; every
// request and answer is validated against the document.
func TestAnswersMatchOpenAPI(t *testing.T) {
	e := newEnv(t)
	ct := newContract(t, e.srv.URL)
	ctx := context.Background()
	bearer := func(tok string) apiclienttest.RequestEditorFn {
		return func(_ context.Context, r *http.Request) error {
			if tok != "" {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			return nil
		}
	}
	cl, err := apiclienttest.NewClientWithResponses(e.srv.URL, apiclienttest.WithHTTPClient(&http.Client{Transport: ct}), apiclienttest.WithRequestEditorFn(bearer(tokenA)))
	if err != nil {
		t.Fatal(err)
	}

	lang := "de"
	task := apiclienttest.SubmitRequestTask("summarize")
	sub, err := cl.SubmitBatchWithResponse(ctx, nil, apiclienttest.SubmitBatchJSONRequestBody{Sources: []string{e.src}, Out: e.out, Task: &task, Language: &lang})
	if err != nil || sub.JSON201 == nil {
		t.Fatalf("submit: %v %s", err, body(sub))
	}
	id := sub.JSON201.Id
	if sub.JSON201.Total != 3 {
		t.Errorf("submit: %+v", sub.JSON201)
	}
	// Its model is down (a fallback chain marked it): the answer says so.
	b, err := e.tracker.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := outage.Mark(ctx, e.api.cfg.Redis, jobs.ModelQuotaName(b.Provider, b.Model), outage.Down{Provider: b.Provider, Kind: b.Provider,
		Model: b.Model, Until: now.Add(time.Hour), Reason: "3 connection errors or 5xx answers in a row"}, now); err != nil {
		t.Fatal(err)
	}
	// Follow it: its state and items, as a client would.
	got, err := cl.GetBatchWithResponse(ctx, id)
	if err != nil || got.JSON200 == nil || !slices.Contains(jobs.States, string(got.JSON200.State)) {
		t.Fatalf("get: %v %s", err, body(got))
	}
	if pd := got.JSON200.ProvidersDown; pd == nil || len(*pd) != 1 || (*pd)[0].Model != b.Model || (*pd)[0].Until.Before(now) {
		t.Errorf("get: providers_down of a batch whose model is down: %s", body(got))
	}
	if _, err := cl.ListBatchItemsWithResponse(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	if l, err := cl.ListBatchesWithResponse(ctx, nil); err != nil || l.JSON200 == nil {
		t.Fatalf("list: %v %s", err, body(l))
	}
	c, err := cl.CancelBatchWithResponse(ctx, id)
	if err != nil || c.JSON200 == nil || c.JSON200.Batch.State != apiclienttest.BatchState(jobs.StateCancelling) {
		t.Fatalf("cancel: %v %s", err, body(c))
	}
	got, _ = cl.GetBatchWithResponse(ctx, id)
	if got.JSON200 == nil || deref(got.JSON200.Counts.Cancelled)+deref(got.JSON200.Counts.Skipped) != deref(got.JSON200.Counts.Total) {
		t.Errorf("after cancel, every item ended: %s", body(got))
	}
	cancelled := true
	if r, err := cl.RetryBatchWithResponse(ctx, id, nil, apiclienttest.RetryBatchJSONRequestBody{Cancelled: &cancelled}); err != nil || r.JSON201 == nil {
		t.Fatalf("retry: %v %s", err, body(r))
	}
	if r, _ := cl.RetryBatchWithResponse(ctx, id, nil, apiclienttest.RetryBatchJSONRequestBody{}); r.JSON409 == nil {
		t.Errorf("retry without failed items: %s", body(r))
	}

	// Error answers.
	if r, _ := cl.GetBatchWithResponse(ctx, "no-such-batch"); r.JSON404 == nil {
		t.Errorf("unknown batch: %s", body(r))
	}
	if r, _ := cl.GetBatchWithResponse(ctx, id, bearer("not-a-token")); r.JSON401 == nil {
		t.Errorf("bad token: %s", body(r))
	}
	if r, _ := cl.GetBatchWithResponse(ctx, id, bearer(tokenB)); r.JSON404 == nil {
		t.Errorf("another tenant's batch: %s", body(r))
	}
	if r, _ := cl.SubmitBatchWithResponse(ctx, nil, apiclienttest.SubmitBatchJSONRequestBody{Sources: []string{"/not/allowed"}, Out: e.out}); r.StatusCode() < 400 {
		t.Errorf("source outside --allow: %s", body(r))
	}
	if r, _ := cl.SubmitBatchWithBodyWithResponse(ctx, nil, "application/json", strings.NewReader(`{"sources":`+strings.Repeat(" ", MaxBody)+`}`)); r.StatusCode() != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 1 MiB: %d", r.StatusCode())
	}
	if r, err := cl.GetOpenAPIWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Errorf("openapi.yaml: %v", err)
	}
	for _, want := range []string{"submitBatch 201", "getBatch 200", "getBatch 404", "getBatch 401", "cancelBatch 200", "retryBatch 201", "retryBatch 409", "listBatches 200", "listBatchItems 200", "submitBatch 413"} {
		if !ct.seen[want] {
			t.Errorf("no answer %s was checked against the document", want)
		}
	}
}

// body shows an answer for a failure message.
func body(r interface {
	StatusCode() int
}) string {
	if b, ok := r.(interface{ Bytes() []byte }); ok {
		return fmt.Sprintf("%d %s", r.StatusCode(), b.Bytes())
	}
	return fmt.Sprint(r.StatusCode())
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
