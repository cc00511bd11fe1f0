package ingest_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
)

// TestIgnoreFileKeepsNotesOutOfTheBatch: keys the source's .llamapipeignore
// names, and the file itself, are not inputs; the rest are.
func TestIgnoreFileKeepsNotesOutOfTheBatch(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "contract.txt", []byte("the tenant pays rent."))
	write(t, dir, "LICENSES.md", []byte("# where the examples come from"))
	write(t, dir, "notes/readme.md", []byte("notes"))
	write(t, dir, ingest.IgnoreFile, []byte("# not inputs\nLICENSES.md\n\nnotes/**\n"))
	in := &ingest.Ingester{Open: open}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: filepath.Join(t.TempDir(), "out"), Task: jobs.TaskAuto}}
	p, err := in.Plan(context.Background(), o, &fakeEstimator{}, ingest.PlanOptions{Sample: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 1 {
		t.Errorf("plan lists %d items, want only contract.txt: %+v", p.Total, p)
	}
}

// TestMissingSourceIsASourceError: a source folder that does not exist is
// refused before anything is made, as a SourceError wrapping
// storage.ErrNotExist (the CLI's exit status 3).
func TestMissingSourceIsASourceError(t *testing.T) {
	in := &ingest.Ingester{Open: open}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{filepath.Join(t.TempDir(), "nope")}, Out: t.TempDir(), Task: jobs.TaskAuto}}
	_, err := in.Plan(context.Background(), o, &fakeEstimator{}, ingest.PlanOptions{Sample: -1})
	var se *ingest.SourceError
	if !errors.As(err, &se) || !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Plan of a missing source: %v, want a SourceError wrapping storage.ErrNotExist", err)
	}
}
