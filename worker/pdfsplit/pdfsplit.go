package pdfsplit

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

var (
	// ErrSplit: pdfcpu cannot read or split this PDF (permanent for these
	// bytes). Callers read the page ranges from the original instead.
	ErrSplit = errors.New("pdfsplit: pdfcpu cannot split this PDF")
	// ErrPassword: a user password is required and none, or a wrong one,
	// was given. Same message as worker/pdftext.ErrPassword.
	ErrPassword = errors.New("encrypted: a password is required to open this PDF")
)

// Info describes a PDF as pdfcpu reads it.
type Info struct {
	Pages int
	// Encrypted: the file has an encryption dictionary. Owner-password-only
	// files are Encrypted but open (and must be processed) without a password.
	Encrypted bool
	// NeedsPassword: opening requires a user password (the empty password
	// does not open it), whether or not the right one was given.
	NeedsPassword bool
}

// Range is a 1-based inclusive page range.
type Range struct{ First, Last int }

// Pages returns the number of pages in r.
func (r Range) Pages() int { return r.Last - r.First + 1 }

var disableConfigDir sync.Once

func config(password string) *model.Configuration {
	// Without this pdfcpu writes config.yml under os.UserConfigDir and
	// panics if it cannot.
	disableConfigDir.Do(api.DisableConfigDir)
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationRelaxed
	conf.Cmd = model.SPLIT
	conf.UserPW = password
	conf.OwnerPW = password
	return conf
}

// read parses and validates data. A password that does not open the file is
// retried as empty (owner-password-only files open without one).
func read(data []byte, password string) (*model.Context, error) {
	ctx, err := readOnce(data, password)
	if err != nil && password != "" && errors.Is(err, ErrPassword) {
		ctx, err = readOnce(data, "")
	}
	return ctx, err
}

func readOnce(data []byte, password string) (ctx *model.Context, err error) {
	defer func() {
		if p := recover(); p != nil {
			ctx, err = nil, fmt.Errorf("pdfcpu panic: %v: %w", p, ErrSplit)
		}
	}()
	ctx, err = api.ReadValidateAndOptimize(bytes.NewReader(data), config(password))
	if err != nil {
		if errors.Is(err, pdfcpu.ErrWrongPassword) {
			return nil, fmt.Errorf("pdfcpu: %w", ErrPassword)
		}
		return nil, fmt.Errorf("pdfcpu: %v: %w", err, ErrSplit)
	}
	if ctx.PageCount < 1 {
		return nil, fmt.Errorf("pdfcpu: no pages: %w", ErrSplit)
	}
	return ctx, nil
}

// Inspect reads data with pdfcpu. With a missing or wrong user password it
// returns Info{Encrypted: true, NeedsPassword: true} and ErrPassword; when
// pdfcpu cannot read the file, ErrSplit (callers then inspect with
// worker/pdftext).
func Inspect(data []byte, password string) (Info, error) {
	ctx, err := read(data, password)
	if errors.Is(err, ErrPassword) {
		return Info{Encrypted: true, NeedsPassword: true}, fmt.Errorf("inspect: %w", err)
	}
	if err != nil {
		return Info{}, fmt.Errorf("inspect: %w", err)
	}
	info := Info{Pages: ctx.PageCount, Encrypted: ctx.Encrypt != nil}
	if info.Encrypted && password != "" {
		// Opened with the password; does it open without one?
		if _, err := readOnce(data, ""); errors.Is(err, ErrPassword) {
			info.NeedsPassword = true
		}
	}
	return info, nil
}

// Plan groups consecutive pages (pageTokens[i] is page i+1's token
// estimate) into ranges whose token sums are at most budget. A page over
// budget on its own gets its own range; budget <= 0 puts every page in its
// own range; negative estimates count as 0. The ranges cover every page in
// order exactly once.
func Plan(pageTokens []int, budget int) []Range {
	var out []Range
	cur := Range{}
	sum := 0
	for i, t := range pageTokens {
		page := i + 1
		t = max(t, 0)
		if cur.First != 0 && (budget <= 0 || sum+t > budget) {
			out = append(out, cur)
			cur = Range{}
		}
		if cur.First == 0 {
			cur = Range{First: page, Last: page}
			sum = t
			continue
		}
		cur.Last = page
		sum += t
	}
	if cur.First != 0 {
		out = append(out, cur)
	}
	return out
}

// Split writes one unencrypted PDF per range (pages First..Last of data, in
// order). It returns ErrPassword when a user password is needed, ErrSplit
// (wrapped) when pdfcpu cannot read the file or extract a range, and a
// plain error for ranges outside the document.
func Split(data []byte, password string, ranges []Range) ([][]byte, error) {
	ctx, err := read(data, password)
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	for _, r := range ranges {
		if r.First < 1 || r.Last < r.First || r.Last > ctx.PageCount {
			return nil, fmt.Errorf("split: range %d-%d outside pages 1-%d", r.First, r.Last, ctx.PageCount)
		}
	}
	out := make([][]byte, 0, len(ranges))
	for _, r := range ranges {
		b, err := extract(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("split: pages %d-%d: %w", r.First, r.Last, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func extract(ctx *model.Context, r Range) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("pdfcpu panic: %v: %w", p, ErrSplit)
		}
	}()
	sub, err := pdfcpu.ExtractPages(ctx, api.PagesForPageRange(r.First, r.Last), false)
	if err != nil {
		return nil, fmt.Errorf("pdfcpu extract: %v: %w", err, ErrSplit)
	}
	var buf bytes.Buffer
	if err := api.WriteContext(sub, &buf); err != nil {
		return nil, fmt.Errorf("pdfcpu write: %v: %w", err, ErrSplit)
	}
	return buf.Bytes(), nil
}
