package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/ingest/schedule"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

const (
	manifestsDir = "../../deploy/kubernetes"
	alertsFile   = "../../deploy/prometheus/alerts.yaml"
)

// k8sObject is the part of a Kubernetes object the checks read.
type k8sObject struct {
	file       string
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

type k8sMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds *int64         `yaml:"terminationGracePeriodSeconds"`
	Containers                    []k8sContainer `yaml:"containers"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Volumes                       []struct {
		Name string `yaml:"name"`
	} `yaml:"volumes"`
}

type k8sRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef    *k8sRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *k8sRef `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *k8sRef `yaml:"configMapRef"`
		SecretRef    *k8sRef `yaml:"secretRef"`
	} `yaml:"envFrom"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

// loadManifests decodes every document of every YAML file in dir.
func loadManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in %s (%v)", dir, err)
	}
	var out []k8sObject
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			if o.Kind == "" {
				continue // an empty document
			}
			o.file = filepath.Base(f)
			out = append(out, o)
		}
	}
	return out
}

// podSpec returns a workload's pod template spec.
func (o k8sObject) podSpec(t *testing.T) (k8sPodSpec, bool) {
	t.Helper()
	var path []string
	switch o.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		path = []string{"template", "spec"}
	case "CronJob":
		path = []string{"jobTemplate", "spec", "template", "spec"}
	default:
		return k8sPodSpec{}, false
	}
	var s k8sPodSpec
	if err := decodeAt(&o.Spec, path, &s); err != nil {
		t.Fatalf("%s %s/%s: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
	return s, true
}

// decodeAt decodes the mapping value at path under n into v.
func decodeAt(n *yaml.Node, path []string, v any) error {
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return errors.New("spec: " + key + " is not under a mapping")
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return errors.New("spec: no " + key)
		}
		n = next
	}
	return n.Decode(v)
}

func (o k8sObject) keys() map[string]bool {
	m := map[string]bool{}
	for k := range o.Data {
		m[k] = true
	}
	for k := range o.StringData {
		m[k] = true
	}
	return m
}

// isFileFlag reports whether a flag's value is a file the container must mount.
func isFileFlag(name string) bool {
	return strings.HasSuffix(name, "-file") || slices.Contains([]string{"config", "pdf-passwords", "profiles"}, name)
}

// TestManifestsUseRealFlags checks every llamapipe container in
// deploy/kubernetes against the binary: its subcommand and flags exist, its
// LLAMAPIPE_* environment (direct, from ConfigMaps and Secrets) is read by
// that subcommand, referenced Secrets and keys exist, files it is given are
// mounted, and it requests resources.
func TestManifestsUseRealFlags(t *testing.T) {
	objs := loadManifests(t, manifestsDir)
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.Kind] == nil {
			byKind[o.Kind] = map[string]k8sObject{}
		}
		if _, dup := byKind[o.Kind][o.Metadata.Name]; dup {
			t.Errorf("%s: %s %s defined twice", o.file, o.Kind, o.Metadata.Name)
		}
		byKind[o.Kind][o.Metadata.Name] = o
	}
	app := newApp(io.Discard, io.Discard)
	subcommands := map[string]bool{}
	checked := 0
	for _, o := range objs {
		ps, ok := o.podSpec(t)
		if !ok {
			continue
		}
		for _, c := range append(ps.InitContainers, ps.Containers...) {
			where := o.file + ": " + o.Metadata.Name + "/" + c.Name
			if !strings.Contains(c.Image, "llamapipe") {
				continue
			}
			args := c.Args
			if len(c.Command) > 0 {
				if filepath.Base(c.Command[0]) != "llamapipe" {
					t.Errorf("%s: command %v does not run llamapipe", where, c.Command)
					continue
				}
				args = append(append([]string{}, c.Command[1:]...), c.Args...)
			}
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				t.Errorf("%s: no subcommand in %v", where, args)
				continue
			}
			sub := args[0]
			if sub == "scheduler" && app.Command("scheduler") == nil {
				t.Logf("skipping %s: `llamapipe scheduler` does not exist yet (it comes with the scheduling issue)", where)
				continue
			}
			checked++
			subcommands[sub] = true
			names, envs := flagsOf(t, sub)
			// Secrets read straight from the environment, never through a flag.
			secrets := map[string]bool{}
			if names["api-key-env"] {
				secrets["LLAMAPIPE_API_KEY"] = true
			}
			if names["auth-token-file"] {
				secrets[envDashboardPassword], secrets[envDashboardToken] = true, true
			}
			values := map[string]string{}
			for i := 1; i < len(args); i++ {
				a := args[i]
				if !strings.HasPrefix(a, "-") {
					continue
				}
				n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !names[n] {
					t.Errorf("%s: `llamapipe %s %s`: no such flag", where, sub, a)
					continue
				}
				if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
					v = args[i+1]
				}
				values[n] = v
			}
			// Files given by flag are mounted.
			for n, v := range values {
				if !isFileFlag(n) || v == "" {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if v == m.MountPath || strings.HasPrefix(v, strings.TrimRight(m.MountPath, "/")+"/") {
						mounted = true
					}
				}
				if !mounted {
					t.Errorf("%s: --%s %s is not under any volumeMount", where, n, v)
				}
			}
			checkEnv := func(name, from string) {
				if strings.HasPrefix(name, "LLAMAPIPE_") && !envs[name] && !secrets[name] {
					t.Errorf("%s: environment %s%s is not read by `llamapipe %s`", where, name, from, sub)
				}
			}
			for _, e := range c.Env {
				checkEnv(e.Name, "")
				if e.ValueFrom == nil {
					continue
				}
				for kind, ref := range map[string]*k8sRef{"Secret": e.ValueFrom.SecretKeyRef, "ConfigMap": e.ValueFrom.ConfigMapKeyRef} {
					if ref == nil {
						continue
					}
					obj, ok := byKind[kind][ref.Name]
					if !ok {
						t.Errorf("%s: %s takes %s %s, which the manifests do not define", where, e.Name, kind, ref.Name)
					} else if !obj.keys()[ref.Key] {
						t.Errorf("%s: %s takes key %s of %s %s, which has no such key", where, e.Name, ref.Key, kind, ref.Name)
					}
				}
			}
			for _, ef := range c.EnvFrom {
				for kind, ref := range map[string]*k8sRef{"Secret": ef.SecretRef, "ConfigMap": ef.ConfigMapRef} {
					if ref == nil {
						continue
					}
					obj, ok := byKind[kind][ref.Name]
					if !ok {
						t.Errorf("%s: envFrom %s %s, which the manifests do not define", where, kind, ref.Name)
						continue
					}
					for k := range obj.keys() {
						checkEnv(k, " (from "+kind+" "+ref.Name+")")
					}
				}
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
				t.Errorf("%s: no cpu and memory requests", where)
			}
			if sub == "worker" {
				checkGrace(t, where, ps, values["shutdown-timeout"])
				checkKEDA(t, byKind, o.Metadata.Name, values["queues"])
			}
		}
	}
	for _, want := range []string{"worker", "dashboard"} {
		if !subcommands[want] {
			t.Errorf("no %s container in %s", want, manifestsDir)
		}
	}
	if checked == 0 {
		t.Fatal("no llamapipe container checked")
	}
	checkServices(t, objs)
	checkSchedules(t, byKind)
}

// checkSchedules: the schedules shipped in ConfigMaps load as the scheduler
// would load them.
func checkSchedules(t *testing.T, byKind map[string]map[string]k8sObject) {
	t.Helper()
	for _, cm := range byKind["ConfigMap"] {
		for key, content := range cm.Data {
			if !strings.HasPrefix(key, "schedules") || !strings.HasSuffix(key, ".yaml") {
				continue
			}
			path := filepath.Join(t.TempDir(), key)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := schedule.Load(path); err != nil {
				t.Errorf("ConfigMap %s key %s: %v", cm.Metadata.Name, key, err)
			}
		}
	}
}

// checkGrace: SIGTERM drains; Kubernetes must not SIGKILL before running
// tasks had their --shutdown-timeout.
func checkGrace(t *testing.T, where string, ps k8sPodSpec, shutdown string) {
	t.Helper()
	if shutdown == "" {
		t.Errorf("%s: worker without an explicit --shutdown-timeout", where)
		return
	}
	d, err := time.ParseDuration(shutdown)
	if err != nil {
		t.Errorf("%s: --shutdown-timeout %q: %v", where, shutdown, err)
		return
	}
	grace := 30 * time.Second // Kubernetes' default
	if ps.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second
	}
	if grace <= d {
		t.Errorf("%s: termination grace period %s is not longer than --shutdown-timeout %s", where, grace, d)
	}
}

// checkKEDA: a ScaledObject scales the worker Deployment on the pending
// lists of queues the worker serves, with credentials that exist.
func checkKEDA(t *testing.T, byKind map[string]map[string]k8sObject, deployment, queuesFlag string) {
	t.Helper()
	served := map[string]bool{}
	for _, qw := range strings.Split(queuesFlag, ",") {
		if q, _, _ := strings.Cut(qw, "="); q != "" {
			served[q] = true
		}
	}
	// asynq's key for a queue's pending list (internal/base.PendingKey) or
	// its running tasks (base.ActiveKey).
	pending := regexp.MustCompile(`^asynq:\{([^}]+)\}:(?:pending|active)$`)
	found := false
	for _, so := range byKind["ScaledObject"] {
		var spec struct {
			ScaleTargetRef struct {
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			MinReplicaCount *int `yaml:"minReplicaCount"`
			Triggers        []struct {
				Type              string            `yaml:"type"`
				Metadata          map[string]string `yaml:"metadata"`
				AuthenticationRef struct {
					Name string `yaml:"name"`
				} `yaml:"authenticationRef"`
			} `yaml:"triggers"`
		}
		if err := so.Spec.Decode(&spec); err != nil {
			t.Fatalf("%s: ScaledObject %s: %v", so.file, so.Metadata.Name, err)
		}
		if spec.ScaleTargetRef.Name != deployment {
			continue
		}
		found = true
		if spec.MinReplicaCount == nil || *spec.MinReplicaCount < 1 {
			t.Errorf("ScaledObject %s may scale workers to zero: finalize tasks and the no-worker alert need one", so.Metadata.Name)
		}
		queues := map[string]bool{}
		for _, tr := range spec.Triggers {
			if tr.Type != "redis" {
				continue
			}
			m := pending.FindStringSubmatch(tr.Metadata["listName"])
			if m == nil {
				t.Errorf("ScaledObject %s: listName %q is not an asynq pending or active list", so.Metadata.Name, tr.Metadata["listName"])
				continue
			}
			if !jobs.ValidQueue(m[1]) || !served[m[1]] {
				t.Errorf("ScaledObject %s: queue %q is not one the worker serves (--queues %s)", so.Metadata.Name, m[1], queuesFlag)
			}
			queues[m[1]] = true
			ta, ok := byKind["TriggerAuthentication"][tr.AuthenticationRef.Name]
			if !ok {
				t.Errorf("ScaledObject %s: no TriggerAuthentication %q", so.Metadata.Name, tr.AuthenticationRef.Name)
				continue
			}
			var auth struct {
				SecretTargetRef []struct {
					Parameter string `yaml:"parameter"`
					Name      string `yaml:"name"`
					Key       string `yaml:"key"`
				} `yaml:"secretTargetRef"`
			}
			if err := ta.Spec.Decode(&auth); err != nil {
				t.Fatal(err)
			}
			for _, r := range auth.SecretTargetRef {
				if s, ok := byKind["Secret"][r.Name]; !ok || !s.keys()[r.Key] {
					t.Errorf("TriggerAuthentication %s: Secret %s has no key %s", ta.Metadata.Name, r.Name, r.Key)
				}
			}
		}
		for q := range served {
			if !queues[q] {
				t.Errorf("ScaledObject %s does not scale on queue %s, which the worker serves", so.Metadata.Name, q)
			}
		}
	}
	if !found {
		t.Errorf("no KEDA ScaledObject scales Deployment %s", deployment)
	}
}

// checkServices: every Service selects some pod template and targets a
// named port it has.
func checkServices(t *testing.T, objs []k8sObject) {
	t.Helper()
	for _, svc := range objs {
		if svc.Kind != "Service" {
			continue
		}
		var spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		}
		if err := svc.Spec.Decode(&spec); err != nil {
			t.Fatal(err)
		}
		matched := false
		for _, o := range objs {
			ps, ok := o.podSpec(t)
			if !ok {
				continue
			}
			var labels map[string]string
			if err := decodeAt(&o.Spec, []string{"template", "metadata", "labels"}, &labels); err != nil {
				continue
			}
			selects := len(spec.Selector) > 0
			for k, v := range spec.Selector {
				if labels[k] != v {
					selects = false
				}
			}
			if !selects {
				continue
			}
			matched = true
			for _, p := range spec.Ports {
				has := false
				for _, c := range ps.Containers {
					for _, cp := range c.Ports {
						has = has || cp.Name == p.TargetPort
					}
				}
				if !has {
					t.Errorf("Service %s targets port %q, which %s does not name", svc.Metadata.Name, p.TargetPort, o.Metadata.Name)
				}
			}
		}
		if !matched {
			t.Errorf("Service %s selects no pod template", svc.Metadata.Name)
		}
	}
}

// TestManifestAlertsReferenceRealMetrics parses the alert rules and checks
// that every llamapipe_* and asynq_* series they name is one the binary
// exports (the worker metrics, asynq's queue collector, the live-worker
// gauges).
func TestManifestAlertsReferenceRealMetrics(t *testing.T) {
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	known := map[string]bool{}
	for _, n := range append(metrics.Names(), metrics.QueueMetricNames()...) {
		known[n] = true
	}
	series := regexp.MustCompile(`\b(?:llamapipe|asynq)_[a-zA-Z0-9_:]*`)
	alerts := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: a rule without alert name or expr", g.Name)
				continue
			}
			alerts[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs labels.severity and annotations.summary", r.Alert)
			}
			if err := balanced(r.Expr); err != nil {
				t.Errorf("%s: expr: %v", r.Alert, err)
			}
			names := series.FindAllString(stripStrings(r.Expr), -1)
			if len(names) == 0 {
				t.Errorf("%s: expr names no llamapipe or asynq series", r.Alert)
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("%s: expr uses %s, which nothing exports", r.Alert, n)
				}
			}
		}
	}
	// The rules the operators' issue asks for.
	if len(alerts) < 4 {
		t.Errorf("%d alert rules, want at least: queue growing, failure rate, 429 rate, no worker alive", len(alerts))
	}
}

// stripStrings blanks quoted label values, so a value never reads as a
// series name.
func stripStrings(s string) string {
	return regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(s, `""`)
}

// balanced checks that (), [] and {} pair up outside quoted strings.
func balanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range stripStrings(expr) {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return errors.New("unbalanced " + string(r))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return errors.New("unclosed " + string(stack[len(stack)-1]))
	}
	return nil
}
