package pdfsplit

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pdfcpu/pdfcpu/pkg/api"
)

func checkPlan(t *testing.T, tokens []int, budget int, got []Range) {
	t.Helper()
	next := 1
	for k, r := range got {
		if r.First != next || r.Last < r.First {
			t.Fatalf("tokens %v budget %d: range %d = %+v, want to start at %d", tokens, budget, k, r, next)
		}
		sum := 0
		for p := r.First; p <= r.Last; p++ {
			sum += max(tokens[p-1], 0)
		}
		if sum > budget && r.Pages() > 1 {
			t.Fatalf("tokens %v budget %d: range %+v sums %d", tokens, budget, r, sum)
		}
		// Greedy: the next page would not have fitted.
		if k+1 < len(got) && budget > 0 && sum+max(tokens[r.Last], 0) <= budget {
			t.Fatalf("tokens %v budget %d: range %+v (sum %d) could take page %d", tokens, budget, r, sum, r.Last+1)
		}
		next = r.Last + 1
	}
	if next != len(tokens)+1 {
		t.Fatalf("tokens %v budget %d: ranges %v end at %d, want %d", tokens, budget, got, next-1, len(tokens))
	}
}

func TestPlan(t *testing.T) {
	if got := Plan(nil, 100); len(got) != 0 {
		t.Errorf("Plan(nil) = %v", got)
	}
	got := Plan([]int{40, 40, 40, 500, 10, 10}, 100)
	want := []Range{{1, 2}, {3, 3}, {4, 4}, {5, 6}}
	if len(got) != len(want) {
		t.Fatalf("Plan = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Plan = %v, want %v", got, want)
		}
	}
	if got := Plan([]int{1, 2, 3}, 0); len(got) != 3 {
		t.Errorf("budget 0: %v, want one range per page", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := rng.IntN(40)
		tokens := make([]int, n)
		for i := range tokens {
			tokens[i] = rng.IntN(1200) - 100 // some negative, some over budget
		}
		budget := rng.IntN(2000) - 10
		checkPlan(t, tokens, budget, Plan(tokens, budget))
	}
}

func pdfcpuPages(t *testing.T, b []byte) int {
	t.Helper()
	conf := config("")
	ctx, err := api.ReadAndValidate(bytes.NewReader(b), conf)
	if err != nil {
		t.Fatalf("reopen chunk with pdfcpu: %v", err)
	}
	if ctx.Encrypt != nil {
		t.Errorf("chunk is encrypted")
	}
	return ctx.PageCount
}

func pdftotextPage(t *testing.T, b []byte, page int) string {
	t.Helper()
	cmd := exec.Command("pdftotext", "-q", "-f", strconv.Itoa(page), "-l", strconv.Itoa(page), "-", "-")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestSplitContract(t *testing.T) {
	data := readFile(t, filepath.Join(corpusDir(t), "contracts/cuad_BIOAMBER_Development_Agreement.pdf"))
	info, err := Inspect(data, "")
	if err != nil {
		t.Fatal(err)
	}
	if info != (Info{Pages: 18}) {
		t.Fatalf("Inspect = %+v, want 18 pages, not encrypted", info)
	}
	tokens := make([]int, info.Pages)
	for i := range tokens {
		tokens[i] = 1000 + 100*(i%3)
	}
	ranges := Plan(tokens, 3500)
	if len(ranges) < 4 {
		t.Fatalf("Plan gave only %d ranges", len(ranges))
	}
	chunks, err := Split(data, "", ranges)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != len(ranges) {
		t.Fatalf("%d chunks for %d ranges", len(chunks), len(ranges))
	}
	_, havePdftotext := exec.LookPath("pdftotext")
	for i, r := range ranges {
		if n := pdfcpuPages(t, chunks[i]); n != r.Pages() {
			t.Errorf("chunk %d (%+v): %d pages, want %d", i, r, n, r.Pages())
		}
		if havePdftotext != nil {
			continue
		}
		// The chunk's first and last pages are the original's.
		for _, p := range []int{r.First, r.Last} {
			if got, want := pdftotextPage(t, chunks[i], p-r.First+1), pdftotextPage(t, data, p); got != want || got == "" {
				t.Errorf("chunk %d page %d: text differs from original page %d (%d vs %d chars)", i, p-r.First+1, p, len(got), len(want))
			}
		}
	}
	if _, err := Split(data, "", []Range{{First: 18, Last: 19}}); err == nil || errors.Is(err, ErrSplit) {
		t.Errorf("range past the end: err = %v, want a plain range error", err)
	}
}

func TestEncrypted(t *testing.T) {
	dir := corpusDir(t)
	user := readFile(t, filepath.Join(dir, "encrypted/gen_contract_userpw_aes256.pdf"))
	info, err := Inspect(user, "")
	if !errors.Is(err, ErrPassword) || !info.NeedsPassword || !info.Encrypted {
		t.Errorf("user-password file without password: %+v, %v", info, err)
	}
	if _, err := Inspect(user, "wrong"); !errors.Is(err, ErrPassword) {
		t.Errorf("wrong password: %v", err)
	}
	info, err = Inspect(user, "user123")
	if err != nil || info != (Info{Pages: 4, Encrypted: true, NeedsPassword: true}) {
		t.Errorf("with password: %+v, %v", info, err)
	}
	if _, err := Split(user, "", []Range{{1, 4}}); !errors.Is(err, ErrPassword) {
		t.Errorf("split without password: %v", err)
	}
	chunks, err := Split(user, "user123", []Range{{1, 2}, {3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if n := pdfcpuPages(t, c); n != 2 { // also asserts not encrypted
			t.Errorf("chunk pages %d, want 2", n)
		}
	}

	owner := readFile(t, filepath.Join(dir, "encrypted/gen_contract_ownerpw_aes128_nocopy.pdf"))
	for _, pw := range []string{"", "stray"} {
		info, err := Inspect(owner, pw)
		if err != nil || info != (Info{Pages: 4, Encrypted: true}) {
			t.Errorf("owner-only, password %q: %+v, %v", pw, info, err)
		}
	}
	if _, err := Split(owner, "", []Range{{1, 4}}); err != nil {
		t.Errorf("owner-only split: %v", err)
	}
}

// TestCorpus: every file inspects and splits or fails with a sentinel,
// never a panic; the text, contract and long folders mostly split.
func TestCorpus(t *testing.T) {
	pw := passwords(t)
	for _, folder := range []string{"text", "cjk", "contracts", "long", "encrypted", "scanned", "broken"} {
		ok, total := 0, 0
		for _, f := range corpusFiles(t, folder) {
			p := ""
			if s := pw[rel(f)]; s != nil {
				p = *s
			}
			data := readFile(t, f)
			total++
			info, err := Inspect(data, p)
			if err != nil {
				if !errors.Is(err, ErrSplit) && !errors.Is(err, ErrPassword) {
					t.Errorf("%s: Inspect: unclassified error %v", rel(f), err)
				}
				if _, err := Split(data, p, []Range{{1, 1}}); !errors.Is(err, ErrSplit) && !errors.Is(err, ErrPassword) {
					t.Errorf("%s: Split after failed Inspect: %v", rel(f), err)
				}
				t.Logf("%s: Inspect: %.120s", rel(f), err)
				continue
			}
			if info.Pages < 1 {
				t.Errorf("%s: %d pages", rel(f), info.Pages)
				continue
			}
			// First and last page as separate chunks.
			ranges := []Range{{1, 1}, {info.Pages, info.Pages}}
			chunks, err := Split(data, p, ranges)
			if err != nil {
				if !errors.Is(err, ErrSplit) {
					t.Errorf("%s: Split: unclassified error %v", rel(f), err)
				}
				t.Logf("%s: Split: %.120s", rel(f), err)
				continue
			}
			for i := range chunks {
				if n := pdfcpuPages(t, chunks[i]); n != 1 {
					t.Errorf("%s: chunk %d has %d pages", rel(f), i, n)
				}
			}
			ok++
		}
		t.Logf("%s: %d/%d split", folder, ok, total)
		switch folder {
		case "contracts", "long":
			if ok != total {
				t.Errorf("%s: only %d of %d split", folder, ok, total)
			}
		}
	}
}
