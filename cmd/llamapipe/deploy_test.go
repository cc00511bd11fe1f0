package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
	"go.yaml.in/yaml/v3"
)

// flagsOf returns the flag names and environment twins a subcommand
// accepts, the root's persistent flags included.
func flagsOf(t *testing.T, sub string) (names, envs map[string]bool) {
	t.Helper()
	app := newApp(io.Discard, io.Discard)
	names, envs = map[string]bool{"help": true, "h": true}, map[string]bool{}
	add := func(fs []cli.Flag) {
		for _, f := range fs {
			for _, n := range f.Names() {
				names[n] = true
			}
			if e, ok := f.(interface{ GetEnvVars() []string }); ok {
				for _, v := range e.GetEnvVars() {
					envs[v] = true
				}
			}
		}
	}
	add(app.Flags)
	c := app.Command(sub)
	if c == nil {
		t.Fatalf("no subcommand %q", sub)
	}
	add(c.Flags)
	return names, envs
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
}

func TestComposeServicesUseRealFlags(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, need := range []string{"redis", "minio", "minio-init", "worker", "dashboard", "scheduler"} {
		if _, ok := doc.Services[need]; !ok {
			t.Errorf("docker-compose.yml has no %s service", need)
		}
	}
	if !strings.Contains(strings.Join(doc.Services["redis"].Command, " "), "--appendonly yes") {
		t.Error("redis must run with AOF persistence (--appendonly yes)")
	}
	ours := 0
	for name, s := range doc.Services {
		if s.Image != "llamapipe:local" { // MinIO is built too (deploy/minio), but is not llamapipe
			continue
		}
		ours++
		args := s.Command
		if len(s.Entrypoint) > 0 {
			if !strings.HasSuffix(s.Entrypoint[0], "/llamapipe") {
				t.Errorf("%s: entrypoint %v does not run llamapipe", name, s.Entrypoint)
				continue
			}
			args = append(append([]string{}, s.Entrypoint[1:]...), args...)
		}
		if len(args) == 0 {
			t.Errorf("%s: no subcommand", name)
			continue
		}
		names, envs := flagsOf(t, args[0])
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				continue
			}
			n := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
			if !names[n] {
				t.Errorf("%s: %s %s: no such flag", name, args[0], a)
			}
		}
		for k := range s.Environment {
			secret := k == "LLAMAPIPE_API_KEY" || k == "LLAMAPIPE_DASHBOARD_TOKEN" || k == "LLAMAPIPE_DASHBOARD_PASSWORD"
			if strings.HasPrefix(k, "LLAMAPIPE_") && !secret && !envs[k] {
				t.Errorf("%s: environment %s is not read by `llamapipe %s`", name, k, args[0])
			}
		}
	}
	if ours < 2 {
		t.Errorf("%d llamapipe services in docker-compose.yml, want worker and ingest at least", ours)
	}
}

// MinIO and the dashboard are reached on 127.0.0.1 only, and MinIO's
// credentials come from the environment with no default (compose refuses
// to start without them): a compose file copied to a server does not
// publish an S3 API with well-known keys.
func TestComposePublishesNothingWithDefaultCredentials(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for name, s := range doc.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q on every interface: bind it to 127.0.0.1", name, p)
			}
		}
		for k, v := range s.Environment {
			if !strings.Contains(k, "ROOT_") && !strings.Contains(k, "SECRET") && !strings.Contains(k, "ACCESS_KEY") {
				continue
			}
			// ${VAR:?message} fails without VAR; ${VAR:-default} or a
			// literal would ship a well-known credential.
			if !strings.HasPrefix(v, "${") || !strings.Contains(v, ":?") {
				t.Errorf("%s: %s = %q: take it from the environment with no default (${VAR:?...})", name, k, v)
			}
		}
	}
	if len(doc.Services["minio"].Ports) == 0 {
		t.Error("minio publishes no port: the test checks nothing")
	}
}

func TestDockerfileIsMultiStageStaticNonRoot(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n < 2 {
		t.Errorf("%d FROM lines: not multi-stage", n)
	}
	for _, want := range []string{`-extldflags "-static"`, "libjpeg62-turbo-dev", "./cmd/llamapipe", "USER nonroot", "ENTRYPOINT", "static-debian12"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^FROM golang:1\.26`).MatchString(s) {
		t.Error("build stage is not on the Go version in go.mod (1.26)")
	}
}
