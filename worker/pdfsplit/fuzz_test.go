package pdfsplit

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// tokensOf reads little-endian int16 pairs as page token estimates (scaled,
// so pages range from negative to well over any budget).
func tokensOf(raw []byte) []int {
	tokens := make([]int, len(raw)/2)
	for i := range tokens {
		tokens[i] = int(int16(binary.LittleEndian.Uint16(raw[2*i:]))) * 4
	}
	return tokens
}

func rawOf(tokens ...int16) []byte {
	var b []byte
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint16(b, uint16(t))
	}
	return b
}

// FuzzPlan checks Plan's invariants for any page estimates and budget:
// every page in exactly one range, in order; no multi-page range over the
// budget; greedy (a range ends only when the next page would not fit); one
// page per range when budget <= 0; the input is left alone.
func FuzzPlan(f *testing.F) {
	f.Add(rawOf(500, 480, 510, 20), 1500)        // a short contract
	f.Add(rawOf(100, 8000, 100, 100, 100), 2000) // one page over budget alone
	f.Add(rawOf(-5, 0, 0, 300, -32768), 300)     // negative and empty pages
	f.Add(rawOf(1, 2, 3), 0)
	f.Add(rawOf(1, 2, 3), -1)
	f.Add([]byte{}, 100)
	f.Add(rawOf(32767, 32767, 32767, 32767), 1<<20)
	f.Fuzz(func(t *testing.T, raw []byte, budget int) {
		if len(raw) > 1<<14 {
			return
		}
		tokens := tokensOf(raw)
		orig := slices.Clone(tokens)
		got := Plan(tokens, budget)
		if !slices.Equal(tokens, orig) {
			t.Fatal("Plan changed its input")
		}
		checkPlan(t, tokens, budget, got)
		if budget <= 0 && len(got) != len(tokens) {
			t.Fatalf("budget %d: %d ranges for %d pages, want one per page", budget, len(got), len(tokens))
		}
		if len(tokens) == 0 && len(got) != 0 {
			t.Fatalf("ranges %v for no pages", got)
		}
	})
}

// addCorpusPDFs adds the corpus's PDFs up to maxSize bytes as seeds.
func addCorpusPDFs(f *testing.F, maxSize int64) {
	f.Helper()
	dir := corpusDir(f)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".pdf" {
			return err
		}
		if info, err := d.Info(); err != nil || info.Size() > maxSize {
			return err
		}
		f.Add(readFile(f, p))
		n++
		return nil
	})
	if err != nil {
		f.Fatalf("walk %s: %v", dir, err)
	}
	if n == 0 {
		f.Fatalf("no PDFs of at most %d bytes under %s", maxSize, dir)
	}
}

// FuzzInspectSplit feeds any bytes to Inspect and, when pdfcpu reads them,
// splits the document into two-page chunks: errors must wrap ErrSplit or
// ErrPassword (callers fall back to worker/pdftext on ErrSplit), and every
// chunk Split returns must itself be a PDF with the range's page count.
func FuzzInspectSplit(f *testing.F) {
	addCorpusPDFs(f, 64<<10)
	f.Add([]byte("%PDF-1.4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 256<<10 {
			return
		}
		info, err := Inspect(data, "")
		if err != nil {
			if !errors.Is(err, ErrSplit) && !errors.Is(err, ErrPassword) {
				t.Fatalf("Inspect error wraps no sentinel: %v", err)
			}
			return
		}
		if info.Pages < 1 {
			t.Fatalf("Inspect succeeded with %d pages", info.Pages)
		}
		if info.Pages > 32 {
			return
		}
		ones := make([]int, info.Pages)
		for i := range ones {
			ones[i] = 1
		}
		ranges := Plan(ones, 2)
		chunks, err := Split(data, "", ranges)
		if err != nil {
			if !errors.Is(err, ErrSplit) && !errors.Is(err, ErrPassword) {
				t.Fatalf("Split of a readable %d-page PDF: error wraps no sentinel: %v", info.Pages, err)
			}
			return
		}
		if len(chunks) != len(ranges) {
			t.Fatalf("%d chunks for %d ranges", len(chunks), len(ranges))
		}
		for i, c := range chunks {
			ci, err := Inspect(c, "")
			if err != nil {
				t.Fatalf("chunk %d (pages %d-%d) does not read back: %v", i, ranges[i].First, ranges[i].Last, err)
			}
			if ci.Pages != ranges[i].Pages() || ci.Encrypted {
				t.Fatalf("chunk %d (pages %d-%d): %+v", i, ranges[i].First, ranges[i].Last, ci)
			}
		}
	})
}
