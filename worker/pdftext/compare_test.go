package pdftext

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"unicode"
)

// wordF1 is the F1 score of the two texts' word multisets: words are
// whitespace-separated tokens, lower-cased, with leading/trailing
// punctuation removed (so "Agreement," == "agreement"). 1 means the same
// words the same number of times, in any order. Two empty texts agree (1).
func wordF1(a, b string) float64 {
	ca, na := wordCounts(a)
	cb, nb := wordCounts(b)
	if na == 0 && nb == 0 {
		return 1
	}
	if na == 0 || nb == 0 {
		return 0
	}
	common := 0
	for w, n := range ca {
		common += min(n, cb[w])
	}
	p := float64(common) / float64(na)
	r := float64(common) / float64(nb)
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

func wordCounts(s string) (map[string]int, int) {
	m := map[string]int{}
	n := 0
	for _, w := range strings.Fields(s) {
		w = strings.ToLower(strings.TrimFunc(w, func(r rune) bool {
			return unicode.IsPunct(r) || unicode.IsSymbol(r)
		}))
		if w == "" {
			continue
		}
		m[w]++
		n++
	}
	return m, n
}

// havePdftotext reports whether poppler's pdftotext is on PATH.
func havePdftotext() bool {
	_, err := exec.LookPath("pdftotext")
	return err == nil
}

// pdftotext runs poppler's pdftotext on pages first..last (1-based; 0,0 =
// all pages) and returns the text (form feeds between pages).
func pdftotext(ctx context.Context, path string, first, last int) (string, error) {
	args := []string{"-q", "-enc", "UTF-8"}
	if first > 0 {
		args = append(args, "-f", fmt.Sprint(first), "-l", fmt.Sprint(last))
	}
	args = append(args, path, "-")
	cmd := exec.CommandContext(ctx, "pdftotext", args...)
	cmd.Stderr = nil
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pdftotext %s: %w", path, err)
	}
	return string(out), nil
}

// inCI reports whether the tests run under CI (where pdftotext must exist).
func inCI() bool { return os.Getenv("CI") != "" }
