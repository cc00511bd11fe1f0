package estimate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker/estimate"
)

func TestPasswordByURLKeyThenFileName(t *testing.T) {
	ref := jobs.Ref{Location: "s3://acme/inbox", Key: "2026/locked.pdf"}
	for _, c := range []struct {
		passwords map[string]string
		want      string
	}{
		{map[string]string{"locked.pdf": "name"}, "name"},
		{map[string]string{"locked.pdf": "name", "2026/locked.pdf": "key"}, "key"},
		{map[string]string{"locked.pdf": "name", "2026/locked.pdf": "key", "s3://acme/inbox/2026/locked.pdf": "url"}, "url"},
		{map[string]string{"other.pdf": "x"}, ""},
	} {
		if got := estimate.Password(c.passwords, ref); got != c.want {
			t.Errorf("Password(%v) = %q, want %q", c.passwords, got, c.want)
		}
	}
}

// TestPlanOpensEncryptedPDFsByFileName: with the corpus passwords keyed by
// file name (as the worker's TestEveryCorpusPDFEndsWithAReason gives them),
// the plan opens the user-password PDFs the worker opens, and says "would
// fail" of the one whose password is unknown, which the worker fails. The
// planner's own lookup used to miss the file-name keys; both now call
// estimate.Password.
func TestPlanOpensEncryptedPDFsByFileName(t *testing.T) {
	ctx := context.Background()
	dir := jobstest.CorpusDir(t, "pdfs") // keys are encrypted/NAME
	pw := map[string]string{}
	for k, v := range jobstest.PDFPasswords(t) {
		if v != nil {
			pw[filepath.Base(k)] = *v
		}
	}
	st, err := backends.Open(ctx, dir, backends.Config{})
	if err != nil {
		t.Fatal(err)
	}
	x := estimate.New(priced, estimate.Options{PDFPasswords: pw})
	est := func(name string) plan.Item {
		key := "encrypted/" + name
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		ref := jobs.Ref{Location: dir, Key: key, Size: fi.Size()}
		return x.Estimate(ctx, st, ref, nil, plan.Item{Kind: jobs.KindDocument, Type: "pdf", Size: fi.Size()})
	}
	for _, name := range []string{"gen_contract_userpw_aes256.pdf", "issue6010_1.pdf"} {
		if e := est(name); e.Skip != "" || e.Pages == 0 || e.Requests == 0 {
			t.Errorf("%s with its password by file name: %+v, want pages and requests", name, e)
		}
	}
	if e := est("pr6531_1.pdf"); !strings.HasPrefix(e.Skip, plan.WouldFail) {
		t.Errorf("pr6531_1.pdf without a password: %+v, want %q", e, plan.WouldFail)
	}
}
