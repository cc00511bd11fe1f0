package jobs_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
)

// Golden JSON written by llamapipe before jobs.Spec (captured from the
// separate IngestPayload and Batch declarations): ingest tasks still in
// the queue and batch records still in Redis must decode unchanged.
const (
	goldenIngestPayload = `{"v":1,"schedule":"nightly-catalog","sources":["s3://catalog/images","/srv/in"],"out":"s3://catalog/captions","task":"caption","queue":"nightly","include":["**/*.jpg"],"exclude":["tmp/**"],"max_size":1048576,"max_retry":3,"force":true,"options":{"language":"de","max_output_tokens":300,"products":"s3://catalog/products.csv","model_mode":"auto"},"provider":"openai","model":"llama-4-scout","webhook":"https://hooks.example.com/llamapipe","tenant":"legal"}`
	goldenBatch         = `{"id":"20261125-101500-3f9a1c","created":"2026-11-25T10:15:00Z","sources":["s3://in/docs/"],"task":"auto","out":"s3://out/x/","queue":"default","options":{"language":"en","max_output_tokens":800,"products":"s3://p/products.jsonl","model_mode":"batch"},"provider":"bedrock","model":"meta.llama4-scout","tenant":"acme","retry_of":"20261124-101500-aaaaaa","include":["*.pdf"],"exclude":["old/**"],"max_size":2048,"max_retry":7,"webhook":"https://hooks.example.com/x","watch":"inbox"}`
	goldenBatchMinimal  = `{"id":"b-min","created":"2026-11-25T10:15:00Z","sources":["/src"],"task":"auto","out":"/out","queue":"default"}`
)

func TestOldPayloadsAndRecordsDecode(t *testing.T) {
	p, err := ingesttask.Decode([]byte(goldenIngestPayload))
	if err != nil {
		t.Fatal(err)
	}
	wantP := ingesttask.Payload{V: 1, Schedule: "nightly-catalog", Spec: jobs.Spec{
		Sources: []string{"s3://catalog/images", "/srv/in"}, Out: "s3://catalog/captions", Task: "caption", Queue: "nightly",
		Options: jobs.Options{Language: "de", MaxOutputTokens: 300, Products: "s3://catalog/products.csv", ModelMode: "auto"},
		Include: []string{"**/*.jpg"}, Exclude: []string{"tmp/**"}, MaxSize: 1048576, MaxRetry: 3, Force: true,
		Provider: "openai", Model: "llama-4-scout", Tenant: "legal", Webhook: "https://hooks.example.com/llamapipe"}}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("ingest payload\n got %+v\nwant %+v", p, wantP)
	}

	var b jobs.Batch
	if err := json.Unmarshal([]byte(goldenBatch), &b); err != nil {
		t.Fatal(err)
	}
	wantB := jobs.Batch{ID: "20261125-101500-3f9a1c", Created: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC),
		Spec: jobs.Spec{Sources: []string{"s3://in/docs/"}, Out: "s3://out/x/", Task: "auto", Queue: "default",
			Options: jobs.Options{Language: "en", MaxOutputTokens: 800, Products: "s3://p/products.jsonl", ModelMode: "batch"},
			Include: []string{"*.pdf"}, Exclude: []string{"old/**"}, MaxSize: 2048, MaxRetry: 7,
			Provider: "bedrock", Model: "meta.llama4-scout", Tenant: "acme", Webhook: "https://hooks.example.com/x"},
		RetryOf: "20261124-101500-aaaaaa", Watch: "inbox"}
	if !reflect.DeepEqual(b, wantB) {
		t.Errorf("batch record\n got %+v\nwant %+v", b, wantB)
	}

	var m jobs.Batch
	if err := json.Unmarshal([]byte(goldenBatchMinimal), &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "b-min" || m.Task != jobs.TaskAuto || m.Queue != jobs.QueueDefault || m.Out != "/out" || !reflect.DeepEqual(m.Options, jobs.Options{}) {
		t.Errorf("minimal batch record %+v", m)
	}
}

// What is written now reads back the same and keeps the old shape: the
// same field names, the worker options nested under "options".
func TestSpecJSONKeepsTheContractsShape(t *testing.T) {
	var b jobs.Batch
	if err := json.Unmarshal([]byte(goldenBatch), &b); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, out), keys(t, []byte(goldenBatch)); !reflect.DeepEqual(got, want) {
		t.Errorf("batch record keys %v, want %v", got, want)
	}
	var back jobs.Batch
	if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, b) {
		t.Errorf("round trip: %+v (%v), want %+v", back, err, b)
	}

	p, err := ingesttask.Decode([]byte(goldenIngestPayload))
	if err != nil {
		t.Fatal(err)
	}
	task, err := ingesttask.NewTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, task.Payload()), keys(t, []byte(goldenIngestPayload)); !reflect.DeepEqual(got, want) {
		t.Errorf("ingest payload keys %v, want %v", got, want)
	}
	if !strings.Contains(string(task.Payload()), `"options":{"language":"de","max_output_tokens":300,"products":"s3://catalog/products.csv","model_mode":"auto"}`) {
		t.Errorf("ingest payload %s: want the options nested as before", task.Payload())
	}
}

func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}

// A schedules entry spells the Spec flat, the options beside the rest.
func TestSpecYAMLIsFlat(t *testing.T) {
	const entry = `
sources: [s3://catalog/images]
out: s3://catalog/captions
task: caption
queue: nightly
language: en
products: s3://catalog/products.csv
max_output_tokens: 300
model_mode: auto
include: ["**/*.jpg"]
exclude: ["tmp/**"]
max_size: 1048576
max_retry: 3
force: true
provider: openai
model: llama-4-scout
tenant: legal
webhook: https://hooks.example.com/x
`
	var s jobs.Spec
	dec := yaml.NewDecoder(strings.NewReader(entry))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	want := jobs.Spec{Sources: []string{"s3://catalog/images"}, Out: "s3://catalog/captions", Task: "caption", Queue: "nightly",
		Options: jobs.Options{Language: "en", Products: "s3://catalog/products.csv", MaxOutputTokens: 300, ModelMode: "auto"},
		Include: []string{"**/*.jpg"}, Exclude: []string{"tmp/**"}, MaxSize: 1048576, MaxRetry: 3, Force: true,
		Provider: "openai", Model: "llama-4-scout", Tenant: "legal", Webhook: "https://hooks.example.com/x"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("spec\n got %+v\nwant %+v", s, want)
	}
	dec = yaml.NewDecoder(strings.NewReader("sources: [/x]\nout: /y\noptions: {language: de}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err == nil {
		t.Error("nested options accepted in YAML")
	}
}

func TestSpecValidate(t *testing.T) {
	good := jobs.Spec{Sources: []string{"/in"}, Out: "/out"}
	if err := speccheck.Validate(good); err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	full := jobs.Spec{Sources: []string{"s3://b/in"}, Out: "s3://b/out", Task: jobs.TaskSummarize, Queue: jobs.QueueNightly,
		Options: jobs.Options{Language: "pt-BR", ModelMode: jobs.ModelAuto}, Include: []string{"**/*.pdf"}, Exclude: []string{"old/*"},
		Tenant: "legal.team-1", Webhook: "https://hooks.example.com/x?y=1"}
	if err := speccheck.Validate(full); err != nil {
		t.Fatalf("full spec: %v", err)
	}
	for field, bad := range map[string]func(*jobs.Spec){
		"sources":    func(s *jobs.Spec) { s.Sources = nil },
		"out":        func(s *jobs.Spec) { s.Out = "" },
		"task":       func(s *jobs.Spec) { s.Task = "translate" },
		"queue":      func(s *jobs.Spec) { s.Queue = "urgent" },
		"model_mode": func(s *jobs.Spec) { s.ModelMode = "later" },
		"language":   func(s *jobs.Spec) { s.Language = "English!" },
		"tenant":     func(s *jobs.Spec) { s.Tenant = "no spaces" },
		"webhook":    func(s *jobs.Spec) { s.Webhook = "ftp://user:secret-pw@hooks.example.com/" },
		"include":    func(s *jobs.Spec) { s.Include = []string{"[a"} },
		"exclude":    func(s *jobs.Spec) { s.Exclude = []string{"[a"} },
	} {
		s := full
		bad(&s)
		err := speccheck.Validate(s)
		var se *speccheck.Error
		if !errors.As(err, &se) || se.Field != field {
			t.Errorf("bad %s: %v, want a SpecError for %s", field, err, field)
			continue
		}
		if strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("bad %s: %q quotes the webhook's credentials", field, err)
		}
	}
}

func TestNewIngestTaskValidates(t *testing.T) {
	_, err := ingesttask.NewTask(ingesttask.Payload{Spec: jobs.Spec{Sources: []string{"/in"}, Out: "/out", Task: "translate"}})
	var se *speccheck.Error
	if !errors.Is(err, jobs.ErrBadPayload) || !errors.As(err, &se) || se.Field != "task" {
		t.Errorf("NewIngestTask with a bad task: %v", err)
	}
}
