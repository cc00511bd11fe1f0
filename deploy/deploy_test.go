// Package deploy holds no Go code: this test checks the deployment files
// with the tools that read them (kubectl's kustomize) and against the
// metrics the binary registers.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/worker/metrics"
)

// kustomize renders a kustomization with `kubectl kustomize` into its
// objects. kubectl is a test dependency (`make deps`): without it the test
// fails, it never skips.
func kustomize(t *testing.T, dir string) []map[string]any {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("no kubectl on PATH: run `make deps` (Debian: kubernetes-client)")
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, errb.String())
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(&out)
	for {
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			break
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("kubectl kustomize %s rendered nothing", dir)
	}
	return objs
}

// get walks nested maps and lists: get(o, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func find(objs []map[string]any, kind, name string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind && get(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

var pinned = regexp.MustCompile(`^[^:@]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$`)

func TestKubernetesManifests(t *testing.T) {
	objs := kustomize(t, "kubernetes")
	containers := 0
	for _, o := range objs {
		spec := get(o, "spec", "template", "spec")
		for _, c := range append(asList(get(spec, "containers")), asList(get(spec, "initContainers"))...) {
			containers++
			img, _ := get(c, "image").(string)
			if !pinned.MatchString(img) || strings.HasSuffix(img, ":latest") {
				t.Errorf("%s %v: image %q is not pinned to a version", o["kind"], get(o, "metadata", "name"), img)
			}
			for _, m := range asList(get(c, "volumeMounts")) {
				if get(m, "subPath") != nil {
					t.Errorf("%v: volume %v mounted with subPath: the container never sees the ConfigMap's updates", get(o, "metadata", "name"), get(m, "name"))
				}
			}
		}
	}
	if containers < 3 {
		t.Fatalf("%d containers rendered, want the worker, dashboard and scheduler", containers)
	}

	// The scheduler reads its schedules from the mounted ConfigMap folder.
	sched := find(objs, "Deployment", "llamapipe-scheduler")
	args := strings.Join(asStrings(get(sched, "spec", "template", "spec", "containers", 0, "args")), " ")
	mount, _ := get(sched, "spec", "template", "spec", "containers", 0, "volumeMounts", 0, "mountPath").(string)
	if mount == "" || !strings.Contains(args, "--config "+mount+"/") {
		t.Errorf("scheduler --config (%s) is not in its schedules mount %q", args, mount)
	}

	// KEDA counts pending and running tasks of every queue, and scaling
	// down lets running tasks finish.
	so := find(objs, "ScaledObject", "llamapipe-worker")
	lists := map[string]bool{}
	for _, tr := range asList(get(so, "spec", "triggers")) {
		lists[get(tr, "metadata", "listName").(string)] = true
	}
	for _, q := range []string{"critical", "default", "nightly"} {
		for _, state := range []string{"pending", "active"} {
			if !lists["asynq:{"+q+"}:"+state] {
				t.Errorf("KEDA does not count asynq:{%s}:%s", q, state)
			}
		}
	}
	down := get(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown")
	if w, _ := get(down, "stabilizationWindowSeconds").(int); w < 300 || len(asList(get(down, "policies"))) == 0 {
		t.Errorf("KEDA's HPA has no slow scale-down behavior: %v", down)
	}
	worker := find(objs, "Deployment", "llamapipe-worker")
	grace, _ := get(worker, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	wargs := strings.Join(asStrings(get(worker, "spec", "template", "spec", "containers", 0, "args")), " ")
	if !strings.Contains(wargs, "--shutdown-timeout=5m") || grace <= 300 {
		t.Errorf("worker: terminationGracePeriodSeconds %d must exceed --shutdown-timeout (%s)", grace, wargs)
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func asStrings(v any) []string {
	var out []string
	for _, x := range asList(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// series finds metric names in PromQL, label values blanked.
var series = regexp.MustCompile(`\b(?:llamapipe|asynq)_[a-zA-Z0-9_:]*`)

func checkSeries(t *testing.T, where, expr string) {
	t.Helper()
	known := map[string]bool{}
	for _, n := range append(metrics.Names(), metrics.QueueMetricNames()...) {
		known[n] = true
	}
	expr = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	names := series.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: %q names no llamapipe or asynq series", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %s is not a metric llamapipe exports (worker/metrics)", where, n)
		}
	}
}

func TestGrafanaDashboardNamesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/llamapipe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Panels) < 8 {
		t.Fatalf("%d panels", len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkSeries(t, "grafana "+p.Title, tg.Expr)
		}
	}
}

func TestMonitoringObjects(t *testing.T) {
	objs := kustomize(t, "kubernetes/monitoring")
	rule := find(objs, "PrometheusRule", "llamapipe")
	if rule == nil || find(objs, "ServiceMonitor", "llamapipe-dashboard") == nil || find(objs, "PodMonitor", "llamapipe-workers") == nil {
		t.Fatalf("monitoring renders no PrometheusRule, ServiceMonitor or PodMonitor: %v", objs)
	}
	// The PrometheusRule is alerts.yaml, not a copy that drifts.
	b, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts map[string]any
	if err := yaml.Unmarshal(b, &alerts); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(get(rule, "spec", "groups"), alerts["groups"]) {
		t.Error("monitoring/prometheusrule.yaml's groups differ from prometheus/alerts.yaml's")
	}
	for _, g := range asList(get(rule, "spec", "groups")) {
		for _, r := range asList(get(g, "rules")) {
			expr, _ := get(r, "expr").(string)
			checkSeries(t, "rule "+fmtAny(get(r, "alert")), expr)
		}
	}
	// The ServiceMonitor scrapes a port the dashboard Service has.
	svc := kustomize(t, "kubernetes")
	port := get(find(objs, "ServiceMonitor", "llamapipe-dashboard"), "spec", "endpoints", 0, "port")
	if get(find(svc, "Service", "llamapipe-dashboard"), "spec", "ports", 0, "name") != port {
		t.Errorf("ServiceMonitor port %v is not the dashboard Service's", port)
	}
}

func fmtAny(v any) string { s, _ := v.(string); return s }

func TestComposeImages(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build any    `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for name, s := range c.Services {
		local := strings.HasSuffix(s.Image, ":local")
		switch {
		case local && s.Build == nil:
			t.Errorf("%s: uses the locally built %s without build:", name, s.Image)
		case !local && (!pinned.MatchString(s.Image) || strings.HasSuffix(s.Image, ":latest")):
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		case strings.Contains(s.Image, "minio/"):
			t.Errorf("%s: %s: MinIO publishes no images any more; build it (deploy/minio)", name, s.Image)
		}
	}
	if !bytes.Contains(b, []byte("LLAMAPIPE_DASHBOARD_TOKEN is")) {
		t.Error("docker-compose.yml does not say what LLAMAPIPE_DASHBOARD_TOKEN is")
	}
}
