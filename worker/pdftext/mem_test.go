package pdftext

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestMemoryLimit: a document that needs more WebAssembly memory than
// MemoryLimitMB fails with ErrDamaged (no panic, no host OOM), and the pool
// replaces the instance so small documents still open.
func TestMemoryLimit(t *testing.T) {
	e, err := New(testCtx(t), Config{MemoryLimitMB: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := corpusDir(t)
	big := readFile(t, filepath.Join(dir, "long/synthetic_contract_A_x5.pdf"))
	d, err := e.Open(testCtx(t), append(append([]byte{}, big...), make([]byte, 30<<20)...), "")
	if err == nil {
		d.Close()
		t.Fatal("opening a 30 MB buffer in a 24 MB instance succeeded")
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("err = %v, want ErrDamaged", err)
	}
	t.Logf("over the limit: %v", err)
	d, err = e.Open(testCtx(t), readFile(t, filepath.Join(dir, "text/issue840.pdf")), "")
	if err != nil {
		t.Fatalf("small document after the failure: %v", err)
	}
	defer d.Close()
	if s, err := d.PageText(testCtx(t), 0); err != nil || s == "" {
		t.Errorf("small document: %d chars, err %v", len(s), err)
	}
}
