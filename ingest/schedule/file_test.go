package schedule

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSchedulesFileIsChecked(t *testing.T) {
	dir := t.TempDir()
	bad := map[string]string{
		"bad cron":      "schedules:\n  - {name: a, cron: '61 * * * *', sources: [/x], out: /y}\n",
		"bad timezone":  "schedules:\n  - {name: a, cron: '0 2 * * *', timezone: Mars/Olympus, sources: [/x], out: /y}\n",
		"duplicate":     "schedules:\n  - {name: a, cron: '0 2 * * *', sources: [/x], out: /y}\n  - {name: a, cron: '0 3 * * *', sources: [/x], out: /y}\n",
		"no sources":    "schedules:\n  - {name: a, cron: '0 2 * * *', out: /y}\n",
		"unknown field": "schedules:\n  - {name: a, cron: '0 2 * * *', sources: [/x], out: /y, colour: red}\n",
		"bad task":      "schedules:\n  - {name: a, cron: '0 2 * * *', sources: [/x], out: /y, task: translate}\n",
	}
	for name, body := range bad {
		p := filepath.Join(dir, "bad.yaml")
		writeFile(t, p, body)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p := filepath.Join(dir, "good.yaml")
	writeFile(t, p, "timezone: Europe/Berlin\nschedules:\n  - {name: nightly, cron: '0 2 * * *', sources: [s3://cat/img], out: s3://cat/cap, task: caption}\n  - {name: ny, cron: '30 1 * * 1-5', timezone: America/New_York, sources: [/in], out: /out}\n")
	cfgs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 || cfgs[0].Cronspec != "CRON_TZ=Europe/Berlin 0 2 * * *" || cfgs[1].Cronspec != "CRON_TZ=America/New_York 30 1 * * 1-5" {
		t.Fatalf("cron specs %q, %q", cfgs[0].Cronspec, cfgs[1].Cronspec)
	}
	pl, err := ingesttask.Decode(cfgs[0].Task.Payload())
	if err != nil || pl.Task != jobs.TaskCaption || pl.Queue != jobs.QueueNightly || pl.Schedule != "nightly" {
		t.Fatalf("payload %+v, %v", pl, err)
	}
}

func TestWatchEntriesAreChecked(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"cron and watch": "schedules:\n  - {name: a, cron: '0 2 * * *', watch: {interval: 1m}, sources: [/x], out: /y}\n",
		"bad watch name": "schedules:\n  - {name: 'a b', watch: {interval: 1m}, sources: [/x], out: /y}\n",
		"neither":        "schedules:\n  - {name: a, sources: [/x], out: /y}\n",
	} {
		p := filepath.Join(dir, "s.yaml")
		writeFile(t, p, body)
		if _, err := Parse(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p := filepath.Join(dir, "w.yaml")
	writeFile(t, p, "timezone: Europe/Berlin\nschedules:\n  - {name: inbox, watch: {interval: 2m, roll_every: 5}, sources: [/x], out: /y}\n")
	s, err := Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Periodic) != 0 || len(s.Watches) != 1 {
		t.Fatalf("%d periodic, %d watches; want 0 and 1", len(s.Periodic), len(s.Watches))
	}
	w := s.Watches[0]
	if w.Name != "inbox" || w.Payload.Queue != jobs.QueueDefault || w.Settings.Timezone != "Europe/Berlin" ||
		w.Settings.RollEvery != 5 || w.Settings.Settle.Seconds() != 10 {
		t.Errorf("watch %+v", w)
	}
}

// A schedule entry's tenant reaches the ingest task, and from it the batch's
// options.
func TestScheduleEntryCarriesItsTenant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(path, []byte(`schedules:
  - {name: nightly-legal, cron: "0 2 * * *", sources: [s3://acme/inbox], out: s3://acme/out, tenant: legal}
  - {name: nightly-other, cron: "0 3 * * *", sources: [s3://acme/inbox], out: s3://acme/out2}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cfgs {
		p, err := ingesttask.Decode(c.Task.Payload())
		if err != nil {
			t.Fatal(err)
		}
		got[p.Schedule] = p.Tenant
	}
	if got["nightly-legal"] != "legal" || got["nightly-other"] != "" {
		t.Errorf("tenants by schedule = %v, want legal for nightly-legal only", got)
	}
}

// Every field a schedules entry could give before jobs.Spec reaches the
// ingest task as it did (the payload written then, captured as golden),
// with the bound an entry that names none now gets (jobs.DefaultMaxQueued).
func TestScheduleEntryMakesTheSamePayload(t *testing.T) {
	const golden = `{"v":1,"schedule":"nightly-catalog","sources":["s3://catalog/images"],"out":"s3://catalog/captions","task":"caption","queue":"nightly","include":["**/*.jpg"],"exclude":["tmp/**"],"max_size":1048576,"max_retry":3,"max_queued":100000,"force":true,"options":{"language":"en","max_output_tokens":300,"products":"s3://catalog/products.csv","model_mode":"auto"},"provider":"openai","model":"llama-4-scout","webhook":"https://hooks.example.com/x","tenant":"legal"}`
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	writeFile(t, path, `timezone: Europe/Berlin
schedules:
  - name: nightly-catalog
    cron: "0 2 * * *"
    timezone: America/New_York
    sources: [s3://catalog/images]
    out: s3://catalog/captions
    task: caption
    queue: nightly
    language: en
    include: ["**/*.jpg"]
    exclude: ["tmp/**"]
    max_size: 1048576
    max_retry: 3
    products: s3://catalog/products.csv
    max_output_tokens: 300
    force: true
    provider: openai
    model: llama-4-scout
    webhook: https://hooks.example.com/x
    model_mode: auto
    tenant: legal
`)
	cfgs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ingesttask.Decode(cfgs[0].Task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	want, err := ingesttask.Decode([]byte(golden))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payload\n got %+v\nwant %+v", got, want)
	}
	// A bad field is refused, naming the entry.
	writeFile(t, path, "schedules:\n  - {name: a, cron: '0 2 * * *', sources: [/x], out: /y, language: 'English!'}\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "entry 1 (a)") || !strings.Contains(err.Error(), "language") {
		t.Errorf("bad language: %v", err)
	}
}

// keep_text in a schedules entry reaches the batch spec (--keep-text).
func TestScheduleKeepsText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	writeFile(t, path, `schedules:
  - name: contracts
    cron: "0 2 * * *"
    sources: [s3://legal/in]
    out: s3://legal/out
    keep_text: true
`)
	cfgs, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ingesttask.Decode(cfgs[0].Task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if !got.KeepText {
		t.Errorf("keep_text lost: %+v", got)
	}
}
