package main

// The house rules of DEVELOPERS.md and issue 14, read off `go list` and the
// source tree: which package may import which, what the llamapipe binary
// links, and how large files, packages and the main package may grow.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/llamapipe/llamapipe"

// Size limits on non-test Go: files, packages (generated code aside) and the
// main package of cmd/llamapipe, which only wires flags to libraries.
const (
	maxFileLines    = 600
	maxPackageLines = 2500
	maxMainLines    = 1800
)

// house is the project's package graph as the rules see it: paths relative
// to the module ("jobs", "worker/llm", "." for none), non-test imports only.
type house struct {
	imports map[string][]string // package → project packages it imports
	binary  []string            // project packages the llamapipe binary links
}

// under reports whether pkg is root or below it.
func under(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

// violations lists every broken boundary rule, one line each.
func (h house) violations() []string {
	var out []string
	pkgs := make([]string, 0, len(h.imports))
	for p := range h.imports {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, p := range pkgs {
		for _, imp := range h.imports[p] {
			if rule := forbidden(p, imp); rule != "" {
				out = append(out, fmt.Sprintf("%s imports %s: %s", p, imp, rule))
			}
		}
	}
	for _, p := range h.binary {
		if isTestTooling(p) {
			out = append(out, fmt.Sprintf("the llamapipe binary links %s: test helpers and fixtures stay out of the product", p))
		}
	}
	return out
}

// forbidden names the rule an import from p of imp breaks, or "".
func forbidden(p, imp string) string {
	switch {
	case under(p, "storage") && !under(imp, "storage"):
		return "storage knows nothing of the rest of the project"
	case under(p, "jobs") && (under(imp, "ingest") || under(imp, "worker") || under(imp, "cmd")):
		return "jobs is the contract: it imports neither ingest, worker nor cmd"
	case under(p, "ingest") && under(imp, "worker"):
		return "ingest and worker do not import each other"
	case under(p, "worker") && under(imp, "ingest"):
		return "ingest and worker do not import each other"
	case !under(p, "cmd") && under(imp, "cmd"):
		return "nothing outside cmd imports cmd"
	case under(p, "worker") && p != "worker" && imp == "worker":
		return "worker stages do not call back up into the worker package"
	case under(p, "prompts") && !under(imp, "prompts"):
		return "prompts is a leaf: templates and schemas only"
	}
	return ""
}

// isTestTooling reports a package that exists for tests: a name ending in
// test or testing (jobstest, storagetest, llmtest, …) or a testdata folder.
func isTestTooling(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, "test") || strings.HasSuffix(base, "testing") ||
		slices.Contains(strings.Split(p, "/"), "testdata")
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(goTool(t), "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

// readHouse asks go list for every package's imports and the binary's deps.
func readHouse(t *testing.T, root string) house {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	h := house{imports: map[string][]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		var own []string
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				own = append(own, rel(imp))
			}
		}
		h.imports[rel(p.ImportPath)] = own
	}
	cmd = exec.Command(goTool(t), "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/llamapipe")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/llamapipe: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module+"/") {
			h.binary = append(h.binary, rel(p))
		}
	}
	if len(h.imports) < 10 || len(h.binary) < 10 {
		t.Fatalf("go list found %d packages and %d in the binary: not the whole module", len(h.imports), len(h.binary))
	}
	return h
}

func TestHouseBoundaries(t *testing.T) {
	h := readHouse(t, moduleRoot(t))
	for _, v := range h.violations() {
		t.Error(v)
	}
}

// TestHouseBoundariesCatch adds, to the real graph, one import against each
// rule and expects the checker to name it: the test above can fail.
func TestHouseBoundariesCatch(t *testing.T) {
	real := readHouse(t, moduleRoot(t))
	cases := []struct{ from, to, rule string }{
		{"storage", "jobs", "storage knows nothing"},
		{"storage/s3store", "worker/llm", "storage knows nothing"},
		{"jobs", "ingest", "jobs is the contract"},
		{"jobs/tenants", "worker/metrics", "jobs is the contract"},
		{"jobs", "cmd/llamapipe", "jobs is the contract"},
		{"ingest", "worker/llm", "do not import each other"},
		{"worker", "ingest", "do not import each other"},
		{"ingest/watch", "cmd/llamapipe", "nothing outside cmd"},
		{"worker/llm/openai", "worker", "call back up"},
		{"prompts", "jobs", "prompts is a leaf"},
	}
	for _, c := range cases {
		t.Run(c.from+"→"+c.to, func(t *testing.T) {
			if _, ok := real.imports[c.from]; !ok {
				t.Fatalf("package %s is not in the module any more: update the case", c.from)
			}
			h := house{imports: map[string][]string{}, binary: real.binary}
			for p, imps := range real.imports {
				h.imports[p] = slices.Clone(imps)
			}
			h.imports[c.from] = append(h.imports[c.from], c.to)
			got := h.violations()
			want := c.from + " imports " + c.to + ": "
			if !slices.ContainsFunc(got, func(v string) bool {
				return strings.HasPrefix(v, want) && strings.Contains(v, c.rule)
			}) {
				t.Errorf("adding %s → %s: violations %q, want one about %q", c.from, c.to, got, c.rule)
			}
		})
	}
	t.Run("binary links a test helper", func(t *testing.T) {
		h := house{imports: real.imports, binary: append(slices.Clone(real.binary), "jobs/jobstest", "storage/storagetest")}
		got := h.violations()
		for _, p := range []string{"jobs/jobstest", "storage/storagetest"} {
			if !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, "links "+p+":") }) {
				t.Errorf("binary linking %s: violations %q", p, got)
			}
		}
	})
}

// nonTestLines counts the lines of a package folder's non-test Go files.
func nonTestLines(t *testing.T, dir string) (total int, files map[string]int, generated bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]int{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		n, gen := 0, false
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if n < 5 && strings.HasPrefix(sc.Text(), "// Code generated") {
				gen = true
			}
			n++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		total += n
		if gen { // generated code (oapi-codegen's client) is not held to the file limit
			generated = true
			continue
		}
		files[name] = n
	}
	return total, files, generated
}

func TestHouseSizes(t *testing.T) {
	root := moduleRoot(t)
	h := readHouse(t, root)
	for pkg := range h.imports {
		total, files, generated := nonTestLines(t, filepath.Join(root, filepath.FromSlash(pkg)))
		for name, n := range files {
			if n > maxFileLines {
				t.Errorf("%s/%s: %d lines of non-test Go (at most %d)", pkg, name, n, maxFileLines)
			}
		}
		if !generated && total > maxPackageLines {
			t.Errorf("%s: %d lines of non-test Go (at most %d: make it two packages)", pkg, total, maxPackageLines)
		}
		if pkg == "cmd/llamapipe" && total > maxMainLines {
			t.Errorf("cmd/llamapipe: %d lines of non-test Go (at most %d: it only wires flags to libraries)", total, maxMainLines)
		}
	}
}
