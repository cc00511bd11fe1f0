package pdftext

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// shared is the one Extractor the tests share (set up in TestMain), so the
// PDFium module is compiled or loaded from the cache once.
var shared *Extractor

const sharedPool = 2

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	// Default CacheDir (the user cache dir) keeps reruns fast; compiling
	// PDFium without a cache takes several seconds.
	e, err := New(ctx, Config{Pool: sharedPool})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pdftext tests: New: %v\n", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pdftext tests: Close: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openFile(t *testing.T, path, password string) (*Doc, error) {
	t.Helper()
	return shared.Open(testCtx(t), readFile(t, path), password)
}

func mustOpen(t *testing.T, path, password string) *Doc {
	t.Helper()
	d, err := openFile(t, path, password)
	if err != nil {
		t.Fatalf("open %s: %v", rel(path), err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close %s: %v", rel(path), err)
		}
	})
	return d
}

// samplePages returns all pages of short documents and first/middle/last
// of long ones, to keep the suite fast.
func samplePages(n int) []int {
	if n <= 40 {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	return []int{0, n / 2, n - 1}
}

// knownText: words that must appear in the extracted text (first pages).
var knownText = map[string][]string{
	"contracts/cuad_AzulSa_Maintenance_Agreement1.pdf":               {"GLOBAL MAINTENANCE AGREEMENT", "AZUL LINHAS"},
	"contracts/cuad_BIOAMBER_Development_Agreement.pdf":              {"Cargill", "Bioamber"},
	"contracts/cuad_FederatedGovIncome_Services_Agreement.pdf":       {"FEDERATED ADVISORY SERVICES"},
	"contracts/cuad_HealthgateData_Hosting_Agreement.pdf":            {"HealthGate", "Blackwell"},
	"contracts/cuad_RitterPharmaceuticals_Development_Agreement.pdf": {"Sekisui", "Qualigen"},
	"contracts/cuad_VerizonAbsLlc_Service_Agreement.pdf":             {"VERIZON ABS LLC"},
	"long/freeculture.pdf":                                           {"Free Culture", "Lessig"},
	"long/synthetic_contract_A_enscript.pdf":                         {"MASTER SUPPLY AGREEMENT"},
	"long/synthetic_contract_A_x5.pdf":                               {"MASTER SUPPLY AGREEMENT"},
	"text/tracemonkey.pdf":                                           {"Trace-based Just-in-Time"},
	"cjk/issue12823.pdf":                                             {"知识库"},
}

// TestTextFiles: every text/cjk/contracts/long file opens, yields text, and
// its wordiest sampled page agrees with pdftotext (word F1).
func TestTextFiles(t *testing.T) {
	var files []string
	for _, folder := range []string{"text", "cjk", "contracts", "long"} {
		files = append(files, corpusFiles(t, folder)...)
	}
	pdftotextOK := havePdftotext()
	if !pdftotextOK {
		if inCI() {
			t.Fatal("pdftotext not found: install poppler-utils")
		}
		t.Log("pdftotext not found: comparing against known words only")
	}
	for _, f := range files {
		t.Run(rel(f), func(t *testing.T) {
			d := mustOpen(t, f, "")
			if d.Pages() < 1 {
				t.Fatalf("Pages() = %d", d.Pages())
			}
			var all strings.Builder
			texts := map[int]string{}
			pages := samplePages(d.Pages())
			if d.Pages() > 40 {
				pages = append(pages, 1, 2) // title pages for the known words
			}
			for _, i := range pages {
				s, err := d.PageText(testCtx(t), i)
				if err != nil {
					t.Fatalf("page %d: %v", i, err)
				}
				texts[i] = s
				all.WriteString(s)
				all.WriteString("\n")
			}
			if strings.TrimSpace(all.String()) == "" {
				t.Fatalf("no text on any of pages %v of %d", pages, d.Pages())
			}
			for _, w := range knownText[rel(f)] {
				if !strings.Contains(all.String(), w) {
					t.Errorf("text does not contain %q", w)
				}
			}
			if !pdftotextOK {
				return
			}
			// Some pages legitimately differ (form widgets, fonts without a
			// Unicode map); at least one sampled page must agree well.
			best, bestPage := -1.0, -1
			for i, ours := range texts {
				if strings.TrimSpace(ours) == "" {
					continue
				}
				theirs, err := pdftotext(testCtx(t), f, i+1, i+1)
				if err != nil {
					t.Fatal(err)
				}
				if f1 := wordF1(ours, theirs); f1 > best {
					best, bestPage = f1, i
				}
			}
			// CJK has no spaces between words, so tokens differ with line
			// breaks (vertical writing in issue6387.pdf scores ~0.55).
			threshold := 0.8
			if strings.HasPrefix(rel(f), "cjk/") {
				threshold = 0.5
			}
			if best < threshold {
				t.Errorf("best page %d: word F1 vs pdftotext = %.2f (< %.1f)", bestPage, best, threshold)
			}
		})
	}
}

func TestPageCounts(t *testing.T) {
	dir := corpusDir(t)
	for name, want := range map[string]int{
		"long/synthetic_contract_A_x5.pdf":                 1535,
		"long/freeculture.pdf":                             352,
		"contracts/cuad_AzulSa_Maintenance_Agreement1.pdf": 111,
		"text/pdkids.pdf":                                  55,
		"broken/gen_contract_bad_startxref.pdf":            18,
	} {
		d := mustOpen(t, filepath.Join(dir, name), "")
		if d.Pages() != want {
			t.Errorf("%s: Pages() = %d, want %d", name, d.Pages(), want)
		}
		d.Close() // give the instance back now (Close is idempotent)
	}
}

func TestPageTextOutOfRange(t *testing.T) {
	d := mustOpen(t, filepath.Join(corpusDir(t), "contracts/cuad_FederatedGovIncome_Services_Agreement.pdf"), "")
	for _, i := range []int{-1, d.Pages()} {
		if _, err := d.PageText(testCtx(t), i); err == nil {
			t.Errorf("PageText(%d) of %d pages: no error", i, d.Pages())
		}
	}
}

// TestEncrypted: files listed in passwords.json have a user password (or an
// unknown one: null); the others in encrypted/ are owner-password only.
func TestEncrypted(t *testing.T) {
	pw := passwords(t)
	for _, f := range corpusFiles(t, "encrypted") {
		name := rel(f)
		p, userPW := pw[name]
		t.Run(name, func(t *testing.T) {
			d, err := openFile(t, f, "")
			switch {
			case userPW:
				if !errors.Is(err, ErrPassword) {
					t.Fatalf("open without password: err = %v, want ErrPassword", err)
				}
				if !strings.Contains(err.Error(), "encrypted: a password is required to open this PDF") {
					t.Errorf("error message %q lacks the password sentence", err)
				}
				if errors.Is(err, ErrDamaged) {
					t.Errorf("password error also matches ErrDamaged: %v", err)
				}
				if _, err := openFile(t, f, "definitely-wrong"); !errors.Is(err, ErrPassword) {
					t.Errorf("open with wrong password: err = %v, want ErrPassword", err)
				}
				if p == nil {
					return // unknown password: must only fail cleanly
				}
				d := mustOpen(t, f, *p)
				if d.Pages() < 1 {
					t.Fatalf("Pages() = %d", d.Pages())
				}
				for i := 0; i < d.Pages(); i++ {
					if _, err := d.PageText(testCtx(t), i); err != nil {
						t.Errorf("page %d: %v", i, err)
					}
				}
			default:
				if err != nil {
					t.Fatalf("owner-password-only PDF must open without a password: %v", err)
				}
				defer d.Close()
				if _, err := d.PageText(testCtx(t), 0); err != nil {
					t.Errorf("page 0: %v", err)
				}
				// A stray password must not stop it from opening.
				d2 := mustOpen(t, f, "some-other-password")
				if d2.Pages() != d.Pages() {
					t.Errorf("pages with stray password = %d, without = %d", d2.Pages(), d.Pages())
				}
			}
		})
	}
	// Decrypted content is real text, not ciphertext.
	d := mustOpen(t, filepath.Join(corpusDir(t), "encrypted/gen_contract_userpw_aes256.pdf"), "user123")
	s, err := d.PageText(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, "FEDERATED ADVISORY SERVICES") {
		t.Errorf("decrypted page 0 lacks the party name; got %d chars", len(s))
	}
	d = mustOpen(t, filepath.Join(corpusDir(t), "encrypted/gen_contract_ownerpw_aes128_nocopy.pdf"), "")
	if s, _ := d.PageText(testCtx(t), 0); !strings.Contains(s, "FEDERATED ADVISORY SERVICES") {
		t.Errorf("owner-password-only page 0 lacks the party name; got %d chars", len(s))
	}
}

// TestBroken: every broken file ends in text or a permanent sentinel,
// never a panic or an unclassified error.
func TestBroken(t *testing.T) {
	for _, f := range corpusFiles(t, "broken") {
		t.Run(rel(f), func(t *testing.T) {
			d, err := openFile(t, f, "")
			if err != nil {
				if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrTooManyPages) {
					t.Fatalf("open: unclassified error: %v", err)
				}
				if !strings.Contains(err.Error(), "damaged") && !errors.Is(err, ErrTooManyPages) {
					t.Errorf("message %q does not say the PDF is damaged", err)
				}
				return
			}
			defer d.Close()
			if d.Pages() < 1 || d.Pages() > 20000 {
				t.Fatalf("Pages() = %d", d.Pages())
			}
			for _, i := range samplePages(d.Pages()) {
				if _, err := d.PageText(testCtx(t), i); err != nil && !errors.Is(err, ErrDamaged) {
					t.Errorf("page %d: unclassified error: %v", i, err)
				}
			}
		})
	}
	dir := corpusDir(t)
	// Reconstructed from a wrong startxref: must still read the contract.
	d := mustOpen(t, filepath.Join(dir, "broken/gen_contract_bad_startxref.pdf"), "")
	if s, _ := d.PageText(testCtx(t), 0); !strings.Contains(s, "Cargill") {
		t.Errorf("bad_startxref page 0 lacks %q", "Cargill")
	}
	// Truncated files cannot be opened.
	for _, name := range []string{"broken/gen_contract_truncated50.pdf", "broken/bug1020226.pdf"} {
		if _, err := openFile(t, filepath.Join(dir, name), ""); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: err = %v, want ErrDamaged", name, err)
		}
	}
	// Claims 213,804,087 pages: PDFium must not believe (or allocate) it.
	d, err := openFile(t, filepath.Join(dir, "broken/poppler-85140-0.pdf"), "")
	if err == nil {
		defer d.Close()
		if d.Pages() > 20000 {
			t.Errorf("poppler-85140-0.pdf: Pages() = %d", d.Pages())
		}
	} else if !errors.Is(err, ErrTooManyPages) && !errors.Is(err, ErrDamaged) {
		t.Errorf("poppler-85140-0.pdf: %v", err)
	}
}

func TestEmptyInput(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not a pdf at all"), []byte("%PDF-1.7\n")} {
		if _, err := shared.Open(testCtx(t), data, ""); !errors.Is(err, ErrDamaged) {
			t.Errorf("Open(%q): err = %v, want ErrDamaged", data, err)
		}
	}
}

// TestTooManyPages uses its own Extractor with a low MaxPages.
func TestTooManyPages(t *testing.T) {
	e, err := New(testCtx(t), Config{MaxPages: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := corpusDir(t)
	_, err = e.Open(testCtx(t), readFile(t, filepath.Join(dir, "long/freeculture.pdf")), "")
	if !errors.Is(err, ErrTooManyPages) {
		t.Fatalf("352 pages with MaxPages 100: err = %v, want ErrTooManyPages", err)
	}
	// The refused document released its instance (Pool is 1).
	d, err := e.Open(testCtx(t), readFile(t, filepath.Join(dir, "contracts/cuad_BIOAMBER_Development_Agreement.pdf")), "")
	if err != nil {
		t.Fatalf("18 pages with MaxPages 100: %v", err)
	}
	d.Close()
}

// scannedNoText: scanned files whose pages have no text layer at all.
var scannedNoText = []string{"gen_contract_scanned150dpi.pdf", "issue13372.pdf", "issue5481.pdf", "issue7229.pdf"}

func TestScanned(t *testing.T) {
	dir := corpusDir(t)
	for _, name := range scannedNoText {
		d := mustOpen(t, filepath.Join(dir, "scanned", name), "")
		for i := 0; i < d.Pages(); i++ {
			s, err := d.PageText(testCtx(t), i)
			if err != nil {
				t.Errorf("%s page %d: %v", name, i, err)
			}
			if s != "" {
				t.Errorf("%s page %d: want no text, got %d chars", name, i, len(s))
			}
		}
		d.Close()
	}
	// The scanned contract is US Letter (8.5x11in) at 150 dpi JPEG.
	d := mustOpen(t, filepath.Join(dir, "scanned/gen_contract_scanned150dpi.pdf"), "")
	if d.Pages() != 6 {
		t.Fatalf("Pages() = %d, want 6", d.Pages())
	}
	img, err := d.RenderPage(testCtx(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if abs(b.Dx()-850) > 1 || abs(b.Dy()-1100) > 1 {
		t.Errorf("Letter at 100 dpi = %dx%d, want 850x1100", b.Dx(), b.Dy())
	}
	dark, total := darkFraction(img)
	if dark < 0.005 || dark > 0.5 {
		t.Errorf("dark pixel fraction %.4f of %d: not a page of text", dark, total)
	}
	// The same page at 50 dpi keeps the aspect ratio.
	small, err := d.RenderPage(testCtx(t), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	ar := func(r image.Rectangle) float64 { return float64(r.Dx()) / float64(r.Dy()) }
	if math.Abs(ar(small.Bounds())-ar(b)) > 0.01 {
		t.Errorf("aspect at 50 dpi %.3f, at 100 dpi %.3f", ar(small.Bounds()), ar(b))
	}
	// Bad DPI values are rejected without touching PDFium.
	for _, dpi := range []int{0, -1, 5000} {
		if _, err := d.RenderPage(testCtx(t), 0, dpi); err == nil {
			t.Errorf("RenderPage dpi %d: no error", dpi)
		}
	}
}

func darkFraction(img image.Image) (float64, int) {
	b := img.Bounds()
	dark, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0x8000 {
				dark++
			}
			total++
		}
	}
	return float64(dark) / float64(total), total
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestRenderedImageOutlivesDoc: the image is a Go copy, valid after Close.
func TestRenderedImageOutlivesDoc(t *testing.T) {
	d, err := openFile(t, filepath.Join(corpusDir(t), "contracts/cuad_FederatedGovIncome_Services_Agreement.pdf"), "")
	if err != nil {
		t.Fatal(err)
	}
	img, err := d.RenderPage(testCtx(t), 0, 36)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := darkFraction(img)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Reuse the freed instance memory with another document.
	d2 := mustOpen(t, filepath.Join(corpusDir(t), "scanned/issue5481.pdf"), "")
	if _, err := d2.RenderPage(testCtx(t), 0, 36); err != nil {
		t.Fatal(err)
	}
	after, _ := darkFraction(img)
	if before == 0 || before != after {
		t.Errorf("dark fraction before close %.4f, after %.4f", before, after)
	}
	if _, err := d.PageText(testCtx(t), 0); err == nil {
		t.Error("PageText after Close: no error")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestContextCancel: a timed-out operation returns the ctx error (not a
// permanent sentinel) and the pool recovers.
func TestContextCancel(t *testing.T) {
	dir := corpusDir(t)
	d := mustOpen(t, filepath.Join(dir, "long/freeculture.pdf"), "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := d.RenderPage(ctx, 0, 600) // far longer than 1ms
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("render with 1ms deadline: err = %v, want DeadlineExceeded", err)
	}
	if errors.Is(err, ErrDamaged) || errors.Is(err, ErrPassword) {
		t.Errorf("timeout classified as permanent: %v", err)
	}
	// Whether the deadline hit before or during the call, the Doc reports
	// the ctx error afterwards or still works; it must not hang or panic.
	if _, err := d.PageText(testCtx(t), 1); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("after timeout: %v", err)
	}
	// Cancelled before Open: ctx error.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := shared.Open(cctx, readFile(t, filepath.Join(dir, "text/issue840.pdf")), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("open with cancelled ctx: err = %v, want Canceled", err)
	}
	// The pool still serves documents (sharedPool instances).
	var docs []*Doc
	for range sharedPool {
		docs = append(docs, mustOpen(t, filepath.Join(dir, "text/issue840.pdf"), ""))
	}
	for _, d := range docs {
		if s, err := d.PageText(testCtx(t), 0); err != nil || s == "" {
			t.Errorf("after timeout: text %d chars, err %v", len(s), err)
		}
	}
}

// TestKilledMidCall forces the kill path: the deadline fires while PDFium is
// busy rendering, the Doc is dead afterwards, and the pool replaces the
// instance.
func TestKilledMidCall(t *testing.T) {
	dir := corpusDir(t)
	d := mustOpen(t, filepath.Join(dir, "long/freeculture.pdf"), "")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	var err error
	for i := 0; i < d.Pages() && err == nil; i++ {
		_, err = d.RenderPage(ctx, i, 300)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("render until cancelled: err = %v, want Canceled", err)
	}
	if _, err := d.PageText(testCtx(t), 0); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	d2 := mustOpen(t, filepath.Join(dir, "text/issue840.pdf"), "")
	if s, err := d2.PageText(testCtx(t), 0); err != nil || s == "" {
		t.Errorf("new doc after kill: %d chars, err %v", len(s), err)
	}
}

// TestPoolExhausted: with Pool 1 a second Open waits for the first Close.
func TestPoolExhausted(t *testing.T) {
	e, err := New(testCtx(t), Config{Pool: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	data := readFile(t, filepath.Join(corpusDir(t), "text/issue840.pdf"))
	d1, err := e.Open(testCtx(t), data, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.Open(ctx, data, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Open on a full pool: err = %v, want DeadlineExceeded", err)
	}
	d1.Close()
	d2, err := e.Open(testCtx(t), data, "")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d2.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Open(testCtx(t), data, ""); err == nil {
		t.Error("Open after Extractor.Close: no error")
	}
}

// TestConcurrent: several goroutines share the pool; texts match a
// sequential read.
func TestConcurrent(t *testing.T) {
	dir := corpusDir(t)
	files := []string{
		filepath.Join(dir, "contracts/cuad_FederatedGovIncome_Services_Agreement.pdf"),
		filepath.Join(dir, "text/issue840.pdf"),
		filepath.Join(dir, "text/file_pdfjs_test.pdf"),
		filepath.Join(dir, "cjk/issue16538.pdf"),
	}
	want := map[string]string{}
	read := func(f string) (string, error) {
		d, err := shared.Open(testCtx(t), readFile(t, f), "")
		if err != nil {
			return "", err
		}
		defer d.Close()
		var b strings.Builder
		for i := 0; i < d.Pages(); i++ {
			s, err := d.PageText(testCtx(t), i)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		}
		return b.String(), nil
	}
	for _, f := range files {
		s, err := read(f)
		if err != nil {
			t.Fatal(err)
		}
		want[f] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(files))
	for range 3 {
		for _, f := range files {
			wg.Go(func() {
				s, err := read(f)
				if err != nil {
					errs <- err
				} else if s != want[f] {
					errs <- fmt.Errorf("%s: concurrent text differs from sequential", rel(f))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
