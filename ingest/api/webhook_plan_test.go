package api

import (
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/jobs/webhook"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitAnswersWithThePlanEstimate(t *testing.T) {
	e := newEnv(t)
	pdf, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t), "pdfs", "contracts", "cuad_FederatedGovIncome_Services_Agreement.pdf"))
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	writeFile(t, filepath.Join(e.src, "contracts", "c.pdf"), pdf)
	f, err := os.Create(filepath.Join(e.src, "p.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, image.NewRGBA(image.Rect(0, 0, 2000, 1000)), nil); err != nil {
		t.Fatal(err)
	}
	f.Close()

	body := map[string]any{"sources": []string{e.src}, "out": e.out, "profile": "groq"}
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, body, nil, &r); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	if r.Plan == nil {
		t.Fatal("no plan in the submit answer")
	}
	p := *r.Plan
	want, err := e.plan("groq", ingest.Options{Spec: jobs.Spec{Sources: []string{e.src}, Out: e.out, Task: jobs.TaskAuto, Queue: jobs.QueueDefault}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != r.Total || p.Total != want.Total || p.All.Items != want.All.Items || p.All.Items != r.Enqueued {
		t.Errorf("items: plan %d/%d, estimate %d/%d, submit %d/%d enqueued", p.All.Items, p.Total, want.All.Items, want.Total, r.Enqueued, r.Total)
	}
	if p.All.InputTokens != want.All.InputTokens || p.All.OutputTokens != want.All.OutputTokens || p.All.Pages != want.All.Pages || p.All.Pages == 0 {
		t.Errorf("plan totals %+v, estimate %+v", p.All, want.All)
	}
	if p.Kinds[jobs.KindImage].Items != 1 || p.Kinds[jobs.KindDocument].Items != 3 {
		t.Errorf("kinds %+v: want 1 image and 3 documents", p.Kinds)
	}
	if p.Profile != "groq" || p.Currency != "USD" || !p.Priced || p.All.Cost <= 0 || p.All.Cost != want.All.Cost {
		t.Errorf("plan %s %s priced=%v cost %v (estimate %v): want a positive USD cost", p.Profile, p.Currency, p.Priced, p.All.Cost, want.All.Cost)
	}
	if p.All.BatchCost == nil || *p.All.BatchCost >= p.All.Cost || *p.All.BatchCost <= 0 {
		t.Errorf("batch cost %v for online %v: want the batch discount applied", p.All.BatchCost, p.All.Cost)
	}
	if p.Extrapolated || p.Sampled != p.All.Items {
		t.Errorf("small folder: extrapolated=%v sampled=%d of %d", p.Extrapolated, p.Sampled, p.All.Items)
	}

	// Without "profile", the server's (here the offline one: no prices).
	var d SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, map[string]any{"sources": []string{e.src}, "out": e.out, "force": true}, nil, &d); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	if d.Plan == nil || d.Plan.Profile != "offline" || d.Plan.Priced || d.Plan.All.Cost != 0 || d.Plan.All.InputTokens == 0 {
		t.Errorf("default profile plan %+v", d.Plan)
	}
}

func TestSubmitPlanIsExtrapolatedForLargeFolders(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PlanSample = 3 })
	src := filepath.Join(e.root, "many")
	for i := range 12 {
		text := strings.Repeat(fmt.Sprintf("Clause %d: the supplier shall deliver the goods on time. ", i), 20+i*10)
		writeFile(t, filepath.Join(src, fmt.Sprintf("doc%02d.txt", i)), []byte(text))
	}
	var r SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, map[string]any{"sources": []string{src}, "out": e.out}, nil, &r); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	p := r.Plan
	if p == nil || !p.Extrapolated || p.Sampled < 3 || p.Sampled > 4 || p.All.Items != 12 || r.Enqueued != 12 {
		t.Fatalf("plan %+v: want 12 items, 3 (or 4) sampled, the rest extrapolated", p)
	}
	exact, err := e.plan("", ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: e.out, Task: jobs.TaskAuto, Queue: jobs.QueueDefault}})
	if err != nil {
		t.Fatal(err)
	}
	if exact.Extrapolated {
		t.Fatal("Sample -1 extrapolated")
	}
	// Scaled by size from a sample, the tokens are near the exact count.
	got, want := float64(p.All.InputTokens), float64(exact.All.InputTokens)
	t.Logf("extrapolated %.0f exact %.0f sampled %d", got, want, p.Sampled)
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("extrapolated input tokens %.0f, exact %.0f", got, want)
	}
}

func TestSubmitProfileMustBeKnown(t *testing.T) {
	e := newEnv(t)
	for profile, wantMsg := range map[string]string{
		"no-such-profile": "unknown preset",
		"dashscope":       "documents cannot be summarized",
	} {
		m := e.submitBody()
		m["profile"] = profile
		var er struct{ Error string }
		if code := e.do("POST", "/v1/batches", tokenA, m, nil, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, wantMsg) {
			t.Errorf("profile %s: %d %q, want 400 containing %q", profile, code, er.Error, wantMsg)
		}
	}
	m := e.submitBody()
	m["profile"], m["task"] = "dashscope", "caption"
	if code := e.do("POST", "/v1/batches", tokenA, m, nil, nil); code != http.StatusCreated {
		t.Errorf("caption with an image-only profile: %d, want 201", code)
	}
}

func TestSubmitWebhookNeedsAnAllowList(t *testing.T) {
	e := newEnv(t)
	m := e.submitBody()
	m["webhook"] = "https://hooks.example.com/llamapipe/x"
	var er struct{ Error string }
	if code := e.do("POST", "/v1/batches", tokenA, m, nil, &er); code != http.StatusBadRequest ||
		er.Error != "webhooks are not enabled on this server (--webhook-allow)" {
		t.Fatalf("%d %q", code, er.Error)
	}
}

func TestSubmitWebhookAllowedAndShownWithItsDelivery(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.AllowWebhooks = []string{"https://hooks.example.com/llamapipe/", "http://b.example"}
	})
	for hook, wantMsg := range map[string]string{
		"https://hooks.example.com/other":                  "not under an allowed webhook prefix",
		"https://hooks.example.com/llamapipe":              "not under an allowed webhook prefix",
		"http://b.example.evil.net/x":                      "not under an allowed webhook prefix",
		"https://b.example/x":                              "not under an allowed webhook prefix",
		"https://user:pw@hooks.example.com/llamapipe/x":    "must not carry credentials",
		"ftp://hooks.example.com/llamapipe/x":              "absolute http",
		"ftp://user:secret-pw@hooks.example.com/":          "absolute http",
		"/llamapipe/x":                                     "absolute http",
		"http://user:secret-pw@b.example.evil.net/leak-me": "credentials",
	} {
		m := e.submitBody()
		m["webhook"] = hook
		var er struct{ Error string }
		if code := e.do("POST", "/v1/batches", tokenA, m, nil, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, wantMsg) {
			t.Errorf("webhook %s: %d %q, want 400 containing %q", hook, code, er.Error, wantMsg)
		}
		if strings.Contains(er.Error, "secret-pw") {
			t.Errorf("the answer repeats the URL's password: %q", er.Error)
		}
	}
	for _, hook := range []string{"https://hooks.example.com/llamapipe/acme?x=1", "http://b.example", "http://b.example/hook"} {
		m := e.submitBody()
		m["webhook"] = hook
		m["force"] = true
		var r SubmitResponse
		if code := e.do("POST", "/v1/batches", tokenA, m, nil, &r); code != http.StatusCreated {
			t.Fatalf("webhook %s: %d, want 201", hook, code)
		}
		b, err := e.tracker.Get(context.Background(), r.ID)
		if err != nil || b.Webhook != hook {
			t.Fatalf("batch webhook %q (%v), want %q", b.Webhook, err, hook)
		}
		var v BatchView
		if code := e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &v); code != http.StatusOK {
			t.Fatalf("detail: %d", code)
		}
		if v.Webhook != hook || v.WebhookDelivery == nil || v.WebhookDelivery.Status != jobs.WebhookPending ||
			v.WebhookDelivery.Delivery != webhook.DeliveryID(r.ID, webhook.EventBatchCompleted) {
			t.Fatalf("detail webhook %q delivery %+v: want pending", v.Webhook, v.WebhookDelivery)
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := e.tracker.SetWebhookState(context.Background(), r.ID, jobs.WebhookState{Status: jobs.WebhookDelivered, Attempts: 2, LastStatus: 204, Updated: at}); err != nil {
			t.Fatal(err)
		}
		v = BatchView{}
		e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &v)
		if d := v.WebhookDelivery; d == nil || d.Status != jobs.WebhookDelivered || d.Attempts != 2 || d.LastStatus != 204 || !d.Updated.Equal(at) {
			t.Fatalf("detail delivery %+v: want delivered after 2 attempts", d)
		}
	}
	// A batch without a webhook shows no delivery.
	var r SubmitResponse
	m := e.submitBody()
	m["force"] = true
	e.do("POST", "/v1/batches", tokenA, m, nil, &r)
	var v BatchView
	e.do("GET", "/v1/batches/"+r.ID, tokenA, nil, nil, &v)
	if v.WebhookDelivery != nil {
		t.Errorf("batch without a webhook shows a delivery %+v", v.WebhookDelivery)
	}
}

func TestNewRefusesBadWebhookPrefixes(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"hooks.example.com", "ftp://hooks.example.com/", "https://u:p@hooks.example.com/"} {
		cfg := e.api.cfg
		cfg.AllowWebhooks = []string{p}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "webhook prefix") {
			t.Errorf("prefix %q: %v, want refused", p, err)
		}
	}
	cfg := e.api.cfg
	cfg.AllowWebhooks = []string{"https://hooks.example.com/"}
	if _, err := New(cfg); err != nil {
		t.Errorf("good prefix refused: %v", err)
	}
}

// jsonFields lists the JSON names of a struct type's fields (untagged
// embedded structs' fields included, as encoding/json flattens them).
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// TestOpenAPISchemasMatchTypes checks the documented properties of the
// request and answer schemas against the Go types' JSON fields.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]yaml.Node `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	// Both ways for the API's own types; for the batch records (which
	// other parts of llamapipe extend), every documented property must
	// exist.
	loose := map[string]bool{"Batch": true, "Counts": true, "Item": true}
	for name, typ := range map[string]reflect.Type{
		"SubmitRequest":  reflect.TypeFor[submitBody](), // SubmitRequest's wire form
		"SubmitResponse": reflect.TypeFor[SubmitResponse](),
		"RetryRequest":   reflect.TypeFor[RetryRequest](),
		"Batch":          reflect.TypeFor[BatchView](),
		"Counts":         reflect.TypeFor[jobs.Counts](),
		"Plan":           reflect.TypeFor[plan.Plan](),
		"PlanTotals":     reflect.TypeFor[plan.Totals](),
		"WebhookState":   reflect.TypeFor[jobs.WebhookState](),
		"WebhookEvent":   reflect.TypeFor[webhook.Event](),
		"Item":           reflect.TypeFor[jobs.Entry](),
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is not in openapi.yaml", name)
			continue
		}
		fields := jsonFields(typ)
		for f := range fields {
			if _, ok := schema.Properties[f]; !ok && !loose[name] {
				t.Errorf("schema %s lacks %s (a field of %s)", name, f, typ)
			}
		}
		for p := range schema.Properties {
			if !fields[p] {
				t.Errorf("schema %s documents %s, which %s does not have", name, p, typ)
			}
		}
	}
}

func TestSubmitModelMode(t *testing.T) {
	e := newEnv(t) // the workers' model: offline, which has no batch API
	for mode, wantMsg := range map[string]string{
		"later": "unknown model_mode",
		"batch": "has no batch API",
	} {
		m := e.submitBody()
		m["model_mode"] = mode
		var er struct{ Error string }
		if code := e.do("POST", "/v1/batches", tokenA, m, nil, &er); code != http.StatusBadRequest || !strings.Contains(er.Error, wantMsg) {
			t.Errorf("model_mode %s: %d %q, want 400 containing %q", mode, code, er.Error, wantMsg)
		}
	}
	e = newEnv(t, func(c *Config) { c.Profiles = testProfiles(groqProfile) })
	m := e.submitBody()
	m["model_mode"], m["queue"] = "batch", "nightly"
	var res SubmitResponse
	if code := e.do("POST", "/v1/batches", tokenA, m, nil, &res); code != http.StatusCreated {
		t.Fatalf("batch mode with a model that has a batch API: %d", code)
	}
	b, err := e.tracker.Get(context.Background(), res.ID)
	if err != nil || b.Options.ModelMode != "batch" {
		t.Fatalf("batch %+v (%v): want model mode batch recorded", b.Options, err)
	}
	if res.Plan == nil || res.Plan.All.BatchCost == nil || *res.Plan.All.BatchCost >= res.Plan.All.Cost {
		t.Errorf("plan %+v: want a batch cost below the online cost", res.Plan)
	}
}

// plan estimates o exactly under the named profile ("": the workers').
func (e *env) plan(profile string, o ingest.Options) (plan.Plan, error) {
	p, err := e.api.cfg.Profiles(profile)
	if err != nil {
		return plan.Plan{}, err
	}
	return e.api.cfg.Ingester.Plan(context.Background(), o, p.Estimator, ingest.PlanOptions{Sample: -1})
}
