package pdftext

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klippa-app/go-pdfium"
	"github.com/klippa-app/go-pdfium/enums"
	pdfiumerrors "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/responses"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// Permanent failures: retrying the same bytes gives the same result.
var (
	// ErrPassword: the PDF has a user password and none, or a wrong one, was given.
	ErrPassword = errors.New("encrypted: a password is required to open this PDF")
	// ErrDamaged: the PDF is damaged (or uses features PDFium cannot read)
	// and cannot be opened or read.
	ErrDamaged = errors.New("the PDF is damaged and cannot be read")
	// ErrTooManyPages: the document has more pages than Config.MaxPages.
	ErrTooManyPages = errors.New("the PDF has too many pages")
	// ErrPageTooLarge: rendering the page at the requested DPI would exceed
	// the pixel limit (see RenderPage).
	ErrPageTooLarge = errors.New("the page is too large to render at this DPI")
)

// errClosed is returned by methods of a closed Doc. It is a programming error,
// not a property of the document.
var errClosed = errors.New("pdftext: document is closed")

const (
	defaultMaxPages      = 20000
	defaultMemoryLimitMB = 1024
	// maxRenderPixels bounds RenderPage output (width*height), ~ A0 at 300 dpi.
	maxRenderPixels = 150_000_000
	maxDPI          = 1200
)

// Config configures an Extractor. Zero values select the documented defaults.
type Config struct {
	// Pool is the number of PDFium instances (WebAssembly module instances).
	// Each open Doc holds one instance until Doc.Close, so size it to the
	// worker's concurrency. Default 1.
	Pool int
	// CacheDir is the wazero compilation cache directory. Compiling the
	// PDFium module takes seconds and hundreds of MB without it.
	// Default os.UserCacheDir()/llamapipe/wazero; if no user cache dir can be
	// determined an in-memory cache is used.
	CacheDir string
	// MaxPages: Open refuses documents with more pages than this
	// (ErrTooManyPages). Default 20000.
	MaxPages int
	// MemoryLimitMB caps the linear memory of each PDFium instance; a
	// document that needs more fails with ErrDamaged instead of exhausting
	// the host. Default 1024 (max 4095).
	MemoryLimitMB int
}

// Extractor owns a pool of PDFium instances. It is safe for concurrent use;
// the Docs it returns are not (use one Doc per goroutine).
type Extractor struct {
	cfg   Config
	pool  pdfium.Pool
	cache wazero.CompilationCache
	// cancel ends the pool context (interrupts any in-flight WASM call).
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
}

// New compiles (or loads from the compilation cache) the PDFium module and
// prepares a pool of cfg.Pool instances. ctx bounds only the
// initialisation; the pool lives until Close.
func New(ctx context.Context, cfg Config) (*Extractor, error) {
	if cfg.Pool <= 0 {
		cfg.Pool = 1
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = defaultMaxPages
	}
	if cfg.MemoryLimitMB <= 0 {
		cfg.MemoryLimitMB = defaultMemoryLimitMB
	}
	if cfg.MemoryLimitMB > 4095 {
		cfg.MemoryLimitMB = 4095
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pdftext: init: %w", err)
	}

	var cache wazero.CompilationCache
	if cfg.CacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cfg.CacheDir = filepath.Join(dir, "llamapipe", "wazero")
		}
	}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("pdftext: compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}

	// The bundled PDFium lowers setjmp/longjmp to WebAssembly exception
	// handling, so that feature must be enabled in a custom runtime config.
	// CloseOnContextDone lets Doc operations be interrupted (see Doc).
	rc := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesExceptionHandling).
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(cfg.MemoryLimitMB) * 16) // 64 KiB pages

	poolCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	type result struct {
		pool pdfium.Pool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("panic: %v", p)}
			}
			done <- r
		}()
		p, err := webassembly.Init(webassembly.Config{
			Context:       poolCtx,
			MinIdle:       1,
			MaxIdle:       cfg.Pool,
			MaxTotal:      cfg.Pool,
			RuntimeConfig: rc,
			// Mount nothing: PDFium only sees the bytes we hand it.
			FSConfig: wazero.NewFSConfig(),
			// PDFium's diagnostics may quote document content; drop them.
			Stdout: io.Discard,
			Stderr: io.Discard,
			// A worker is discarded when its Doc closes: a fresh instance per
			// document means a crashed or bloated instance never serves the
			// next document, and its linear memory is returned to Go.
			ReuseWorkers: false,
		})
		r = result{pool: p, err: err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		cancel()
		go func() {
			if r := <-done; r.pool != nil {
				_ = r.pool.Close()
			}
			_ = cache.Close(context.Background())
		}()
		return nil, fmt.Errorf("pdftext: init: %w", ctx.Err())
	}
	if r.err != nil {
		cancel()
		_ = cache.Close(context.Background())
		return nil, fmt.Errorf("pdftext: init PDFium: %w", r.err)
	}
	return &Extractor{cfg: cfg, pool: r.pool, cache: cache, cancel: cancel}, nil
}

// Close releases the pool; open Docs become unusable. Safe to call twice.
func (e *Extractor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()

	var errs []error
	if err := safeClose(e.pool.Close); err != nil {
		errs = append(errs, fmt.Errorf("close pool: %w", err))
	}
	e.cancel()
	if err := e.cache.Close(context.Background()); err != nil {
		errs = append(errs, fmt.Errorf("close compilation cache: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pdftext: %w", errors.Join(errs...))
	}
	return nil
}

func safeClose(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

// Doc is an open document. It holds one pool instance from Open until Close,
// so every Doc must be closed (other Opens block while the pool is
// exhausted). Use a Doc from one goroutine at a time (calls from several
// goroutines are serialised, not run in parallel).
//
// Every method honours its ctx: when ctx ends during a PDFium call the
// instance is killed (the pool replaces it), the method returns an error
// wrapping ctx.Err() (retryable, not a permanent sentinel), and later calls
// on this Doc return an "instance killed" error wrapping the same ctx error;
// reopen the document to retry. A crash inside PDFium (trap, out of
// memory) likewise kills the instance; that call and later ones return
// ErrDamaged.
type Doc struct {
	inst  pdfium.Pdfium
	doc   references.FPDF_DOCUMENT
	pages int

	mu sync.Mutex
	// dead is set when the instance was killed (timeout or crash); the
	// error explains why and is returned by later calls.
	dead error
}

// Open loads data (the whole PDF) into a pool instance, waiting for a free
// instance until ctx ends. password may be empty; a non-empty password that
// does not open the document is retried as empty so that owner-password-only
// PDFs (which open without a password) still open.
//
// Errors: ErrPassword when a user password is needed and missing or wrong;
// ErrDamaged when PDFium cannot open the file (also for any crash inside
// PDFium); ErrTooManyPages when the page count exceeds Config.MaxPages
// (PDFium takes the count from the page tree without allocating per page);
// ctx errors (retryable) when ctx ends first.
func (e *Extractor) Open(ctx context.Context, data []byte, password string) (*Doc, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, errors.New("pdftext: open: extractor is closed")
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("pdftext: open: empty file: %w", ErrDamaged)
	}
	inst, err := e.pool.GetInstanceWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pdftext: open: wait for a PDFium instance: %w", ctx.Err())
		}
		return nil, fmt.Errorf("pdftext: open: get PDFium instance: %w", err)
	}
	d := &Doc{inst: inst}
	ok := false
	defer func() {
		if !ok {
			_ = d.Close()
		}
	}()

	err = d.do(ctx, "open", func(p pdfium.Pdfium) error {
		ref, err := openDoc(p, data, password)
		if err != nil && password != "" && errors.Is(err, pdfiumerrors.ErrPassword) {
			ref, err = openDoc(p, data, "")
		}
		if err != nil {
			return err
		}
		d.doc = ref
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pdftext: open: %w", err)
	}

	err = d.do(ctx, "page count", func(p pdfium.Pdfium) error {
		r, err := p.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: d.doc})
		if err != nil {
			return err
		}
		d.pages = r.PageCount
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pdftext: open: %w", err)
	}
	if d.pages > e.cfg.MaxPages {
		return nil, fmt.Errorf("pdftext: open: %d pages, limit %d: %w", d.pages, e.cfg.MaxPages, ErrTooManyPages)
	}
	if d.pages <= 0 {
		return nil, fmt.Errorf("pdftext: open: document has no pages: %w", ErrDamaged)
	}
	ok = true
	return d, nil
}

func openDoc(p pdfium.Pdfium, data []byte, password string) (references.FPDF_DOCUMENT, error) {
	req := &requests.OpenDocument{File: &data}
	if password != "" {
		req.Password = &password
	}
	r, err := p.OpenDocument(req)
	if err != nil {
		return "", err
	}
	return r.Document, nil
}

// Pages returns the page count.
func (d *Doc) Pages() int { return d.pages }

// PageText returns the text of page i (0-based) in reading order as PDFium
// sees it, with "\n" line ends. A page without a text layer (a scan) gives
// "" and no error; use RenderPage for it.
func (d *Doc) PageText(ctx context.Context, i int) (string, error) {
	if i < 0 || i >= d.pages {
		return "", fmt.Errorf("pdftext: page %d of %d: out of range", i, d.pages)
	}
	var text string
	err := d.do(ctx, "page text", func(p pdfium.Pdfium) error {
		t, err := pageText(p, d.doc, i)
		text = t
		return err
	})
	if err != nil {
		return "", fmt.Errorf("pdftext: page %d: %w", i, err)
	}
	return normalize(text), nil
}

// pageText reads a page's text in one FPDFText_GetText call (go-pdfium's
// GetPageText helper makes one WebAssembly call per character, ~2x slower).
//
// Pages with annotations are also flattened (in memory only) and read
// again, so that the visible text of filled form fields and stamps is part
// of the page text, as pdftotext reports it. Flattening can break the text
// of pages whose fonts only decode in the original content stream (seen in
// the corpus: bug1669099.pdf), so the flattened text is used only when it
// keeps at least 90% of the original words.
func pageText(p pdfium.Pdfium, doc references.FPDF_DOCUMENT, i int) (string, error) {
	page := requests.Page{ByIndex: &requests.PageByIndex{Document: doc, Index: i}}
	text, err := loadText(p, page)
	if err != nil {
		return "", err
	}
	annots, err := p.FPDFPage_GetAnnotCount(&requests.FPDFPage_GetAnnotCount{Page: page})
	if err != nil || annots.Count == 0 || !hasTextAnnots(p, page, annots.Count) {
		return text, nil // annotations are a bonus; their errors are not fatal
	}
	r, err := p.FPDFPage_Flatten(&requests.FPDFPage_Flatten{Page: page, Usage: requests.FPDFPage_FlattenUsageNormalDisplay})
	if err != nil || r.Result != responses.FPDFPage_FlattenResultSuccess {
		return text, nil
	}
	flat, err := loadText(p, page)
	if err != nil || wordRecall(text, flat) < 0.9 {
		return text, nil
	}
	return flat, nil
}

// textAnnots are annotation subtypes whose appearance can show text.
var textAnnots = map[enums.FPDF_ANNOTATION_SUBTYPE]bool{
	enums.FPDF_ANNOT_SUBTYPE_WIDGET:    true,
	enums.FPDF_ANNOT_SUBTYPE_XFAWIDGET: true,
	enums.FPDF_ANNOT_SUBTYPE_FREETEXT:  true,
	enums.FPDF_ANNOT_SUBTYPE_STAMP:     true,
	enums.FPDF_ANNOT_SUBTYPE_WATERMARK: true,
}

// hasTextAnnots reports whether any of the page's first 1000 annotations
// may show text. Links and popups (common in contracts) do not, and
// flattening costs about as much as reading the page again.
func hasTextAnnots(p pdfium.Pdfium, page requests.Page, count int) bool {
	for i := range min(count, 1000) {
		a, err := p.FPDFPage_GetAnnot(&requests.FPDFPage_GetAnnot{Page: page, Index: i})
		if err != nil {
			continue
		}
		st, err := p.FPDFAnnot_GetSubtype(&requests.FPDFAnnot_GetSubtype{Annotation: a.Annotation})
		_, _ = p.FPDFPage_CloseAnnot(&requests.FPDFPage_CloseAnnot{Annotation: a.Annotation})
		if err == nil && textAnnots[st.Subtype] {
			return true
		}
	}
	return false
}

func loadText(p pdfium.Pdfium, page requests.Page) (string, error) {
	tp, err := p.FPDFText_LoadPage(&requests.FPDFText_LoadPage{Page: page})
	if err != nil {
		return "", err
	}
	defer func() { _, _ = p.FPDFText_ClosePage(&requests.FPDFText_ClosePage{TextPage: tp.TextPage}) }()
	n, err := p.FPDFText_CountChars(&requests.FPDFText_CountChars{TextPage: tp.TextPage})
	if err != nil {
		return "", err
	}
	if n.Count <= 0 {
		return "", nil
	}
	r, err := p.FPDFText_GetText(&requests.FPDFText_GetText{TextPage: tp.TextPage, StartIndex: 0, Count: n.Count})
	if err != nil {
		return "", err
	}
	return r.Text, nil
}

// wordRecall is the fraction of base's words (with multiplicity) that also
// occur in other; 1 when base has no words.
func wordRecall(base, other string) float64 {
	want := map[string]int{}
	n := 0
	for _, w := range strings.Fields(base) {
		want[w]++
		n++
	}
	if n == 0 {
		return 1
	}
	found := 0
	for _, w := range strings.Fields(other) {
		if want[w] > 0 {
			want[w]--
			found++
		}
	}
	return float64(found) / float64(n)
}

// lineEnds normalises PDFium's CRLF line ends, drops NULs and turns
// no-break spaces (common in exported contracts) into plain spaces.
var lineEnds = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "", "\u00a0", " ")

func normalize(s string) string {
	return strings.TrimSpace(lineEnds.Replace(s))
}

// RenderPage renders page i (0-based) at dpi (1..1200) to an RGBA image
// owned by the caller (independent of the Doc). Form fields are drawn.
// ErrPageTooLarge when the image would exceed 150 megapixels.
func (d *Doc) RenderPage(ctx context.Context, i int, dpi int) (image.Image, error) {
	if i < 0 || i >= d.pages {
		return nil, fmt.Errorf("pdftext: render page %d of %d: out of range", i, d.pages)
	}
	if dpi <= 0 || dpi > maxDPI {
		return nil, fmt.Errorf("pdftext: render page %d: dpi %d outside 1..%d", i, dpi, maxDPI)
	}
	page := requests.Page{ByIndex: &requests.PageByIndex{Document: d.doc, Index: i}}
	var img image.Image
	err := d.do(ctx, "render", func(p pdfium.Pdfium) error {
		sz, err := p.GetPageSizeInPixels(&requests.GetPageSizeInPixels{Page: page, DPI: dpi})
		if err != nil {
			return err
		}
		if sz.Width <= 0 || sz.Height <= 0 {
			return fmt.Errorf("page size %dx%d px: %w", sz.Width, sz.Height, ErrDamaged)
		}
		if int64(sz.Width)*int64(sz.Height) > maxRenderPixels {
			return fmt.Errorf("%dx%d px at %d dpi: %w", sz.Width, sz.Height, dpi, ErrPageTooLarge)
		}
		doc := d.doc
		r, err := p.RenderPageInDPI(&requests.RenderPageInDPI{
			Page:       page,
			DPI:        dpi,
			RenderForm: true,
			Document:   &doc,
		})
		if err != nil {
			return err
		}
		defer r.Cleanup()
		// The pixel buffer lives in WebAssembly memory until Cleanup: copy.
		src := r.Result.RenderedImage
		if src == nil {
			return fmt.Errorf("no image returned: %w", ErrDamaged)
		}
		dst := image.NewRGBA(image.Rect(0, 0, src.Bounds().Dx(), src.Bounds().Dy()))
		draw.Draw(dst, dst.Bounds(), src, src.Bounds().Min, draw.Src)
		img = dst
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pdftext: render page %d: %w", i, err)
	}
	return img, nil
}

// Close closes the document and gives its instance back to the pool (where
// it is discarded and replaced by a fresh one). Safe to call twice.
func (d *Doc) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inst == nil {
		return nil
	}
	inst := d.inst
	d.inst = nil
	if d.dead != nil {
		return nil // already killed and returned to the pool
	}
	// Closing the instance closes its documents.
	if err := safeClose(inst.Close); err != nil {
		return fmt.Errorf("pdftext: close: %w", err)
	}
	return nil
}

// do runs fn on the Doc's instance, serialised, with panics recovered and
// ctx enforced by killing the instance. Error mapping:
//   - ctx ended: the instance is killed, error wraps ctx.Err();
//   - PDFium's password error: ErrPassword;
//   - other PDFium-reported errors: ErrDamaged (instance stays usable);
//   - anything else (WebAssembly trap, out of memory, panic): ErrDamaged and
//     the instance is killed, since its state can no longer be trusted.
func (d *Doc) do(ctx context.Context, op string, fn func(pdfium.Pdfium) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead != nil {
		return fmt.Errorf("%s: %w", op, d.dead)
	}
	if d.inst == nil {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	inst := d.inst
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		_ = safeClose(inst.Kill)
	})
	err := recoverCall(func() error { return fn(inst) })
	if !stop() {
		// The kill ran (or is running): wait for it, the instance is gone.
		<-killed
		d.dead = fmt.Errorf("PDFium instance killed: %w", ctx.Err())
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrPageTooLarge), errors.Is(err, ErrDamaged):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, pdfiumerrors.ErrPassword):
		return fmt.Errorf("%s: %w", op, ErrPassword)
	case isPDFiumError(err):
		return fmt.Errorf("%s: %v: %w", op, err, ErrDamaged)
	}
	// Unknown failure inside the runtime: do not trust this instance again.
	_ = safeClose(inst.Kill)
	d.dead = fmt.Errorf("PDFium instance crashed: %v: %w", err, ErrDamaged)
	return fmt.Errorf("%s: %w", op, d.dead)
}

func isPDFiumError(err error) bool {
	for _, e := range []error{
		pdfiumerrors.ErrSuccess, pdfiumerrors.ErrUnknown, pdfiumerrors.ErrFile,
		pdfiumerrors.ErrFormat, pdfiumerrors.ErrSecurity, pdfiumerrors.ErrPage,
		pdfiumerrors.ErrUnexpected,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func recoverCall(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}
