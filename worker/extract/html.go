package extract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/saintfish/chardet"
	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding"
)

// HTML returns the visible text of an HTML page.
//
// Encoding: a byte-order mark wins; then a document that is valid UTF-8 and
// not pure ASCII is UTF-8 (pages mislabelled as Latin-1 are common); then a
// <meta charset> / http-equiv declaration in the first 1024 bytes is
// honoured (golang.org/x/net/html/charset); otherwise the encoding is
// detected as in Text, with Windows-1252 as the WHATWG default.
//
// Text: the contents of script, style, noscript, template, svg, the head
// (except the title, which becomes the first line) and elements with the
// hidden attribute or an inline display:none are skipped. Block elements
// start new lines (paragraph-like blocks are separated by a blank line),
// br is a line break, table cells are separated by " | " and rows by a line
// break, whitespace is collapsed (except inside pre), entities are decoded
// and &nbsp; becomes a space.
func HTML(data []byte) (string, error) {
	src, err := decodeHTML(data)
	if err != nil {
		return "", err
	}
	if bad, ok := plausible([]byte(src)); !ok {
		return "", fmt.Errorf("%w: HTML input looks like binary data (%s)", ErrUnsupportedEncoding, bad)
	}
	return htmlText(src)
}

func decodeHTML(data []byte) (string, error) {
	if enc, n, name := bomEncoding(data); enc != nil {
		out, err := enc.NewDecoder().Bytes(data[n:])
		if err != nil {
			return "", fmt.Errorf("%w: decode %s: %v", ErrUnsupportedEncoding, name, err)
		}
		return string(out), nil
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	ascii := isASCII(data)
	if !ascii && utf8.Valid(data) {
		return string(data), nil
	}
	if enc := declaredHTMLEncoding(data); enc != nil {
		out, err := enc.NewDecoder().Bytes(data)
		if err != nil {
			return "", fmt.Errorf("%w: decode declared charset: %v", ErrUnsupportedEncoding, err)
		}
		return string(out), nil
	}
	if ascii {
		return string(data), nil
	}
	if _, ok := plausible(data); !ok {
		return "", fmt.Errorf("%w: HTML input looks like binary data", ErrUnsupportedEncoding)
	}
	s, _, err := decodeLegacy(data, chardet.NewHtmlDetector())
	return s, err
}

// declaredHTMLEncoding returns the encoding a <meta> in the first 1024
// bytes declares, or nil. charset.DetermineEncoding returns its Windows-1252
// default when nothing is declared; probing it with an ASCII-only copy that
// ends in a UTF-8 "é" makes "nothing declared" come back as UTF-8 instead,
// so a declaration can be told from the default. A declared UTF-8 is
// ignored too: the caller only asks when the data is ASCII or not UTF-8.
func declaredHTMLEncoding(data []byte) encoding.Encoding {
	head := data[:min(len(data), 1000)]
	probe := make([]byte, 0, len(head)+2)
	for _, c := range head {
		if c < 0x80 {
			probe = append(probe, c)
		}
	}
	probe = append(probe, "é"...)
	enc, name, _ := charset.DetermineEncoding(probe, "")
	if name == "utf-8" || enc == nil {
		return nil
	}
	return enc
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// skipped elements: their content is never visible text.
var skipTags = map[string]bool{
	"script": true, "style": true, "noscript": true, "template": true, "svg": true,
	"object": true, "iframe": true, "canvas": true, "select": true, "datalist": true,
}

// Block elements. paraTags get a blank line around them, lineTags a line
// break.
var (
	paraTags = map[string]bool{
		"p": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
		"blockquote": true, "pre": true, "table": true, "ul": true, "ol": true, "dl": true,
		"section": true, "article": true, "header": true, "footer": true, "nav": true,
		"aside": true, "main": true, "figure": true, "form": true, "fieldset": true,
		"address": true, "details": true, "hr": true, "title": true, "menu": true,
	}
	lineTags = map[string]bool{
		"div": true, "li": true, "tr": true, "dt": true, "dd": true, "figcaption": true,
		"caption": true, "summary": true, "legend": true, "thead": true, "tbody": true,
		"tfoot": true, "option": true, "center": true, "br": true,
	}
	// headTags may appear in the head without ending it.
	headTags = map[string]bool{
		"title": true, "meta": true, "link": true, "base": true, "style": true,
		"script": true, "noscript": true, "template": true,
	}
)

// htmlWriter accumulates visible text with collapsed whitespace.
type htmlWriter struct {
	b       strings.Builder
	pending int  // line breaks owed before the next text: 0, 1 or 2
	space   bool // a collapsed space is owed before the next text
	pre     int  // depth of <pre>
}

func (w *htmlWriter) brk(n int) {
	w.space = false
	if w.b.Len() > 0 && n > w.pending {
		w.pending = n
	}
}

func (w *htmlWriter) text(s string) {
	if w.pre > 0 {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
		s = strings.ReplaceAll(s, "\u00a0", " ")
		if s == "" {
			return
		}
		w.flush()
		w.b.WriteString(s)
		return
	}
	lead := s != "" && startsSpace(s)
	fields := strings.FieldsFunc(s, unicode.IsSpace)
	if len(fields) == 0 {
		if lead {
			w.space = true
		}
		return
	}
	if lead {
		w.space = true
	}
	for i, f := range fields {
		if i > 0 {
			w.space = true
		}
		w.flush()
		w.b.WriteString(f)
	}
	if endsSpace(s) {
		w.space = true
	}
}

// lineBreak adds a <br>: consecutive ones make at most a blank line.
func (w *htmlWriter) lineBreak() {
	w.space = false
	if w.b.Len() > 0 && w.pending < 2 {
		w.pending++
	}
}

// flush writes the owed line breaks or space.
func (w *htmlWriter) flush() {
	switch {
	case w.b.Len() == 0:
	case w.pending > 0:
		w.b.WriteString("\n\n"[:w.pending])
	case w.space:
		w.b.WriteByte(' ')
	}
	w.pending, w.space = 0, false
}

// cell starts a table cell: cells after the first in a row get " | ".
func (w *htmlWriter) cell(first bool) {
	if !first {
		w.flush()
		w.b.WriteString(" | ")
	}
	w.space = false
}

func startsSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

func endsSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return unicode.IsSpace(r)
}

// htmlText walks the token stream of decoded HTML.
func htmlText(src string) (string, error) {
	z := html.NewTokenizer(strings.NewReader(src))
	var (
		w        htmlWriter
		skip     string // name of the element being skipped
		skipN    int    // nesting of skip inside itself
		inHead   bool
		inTitle  bool
		firstCol = []bool{true} // per open table: next cell is the first of its row
	)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: HTML: %v", ErrCorrupt, err)
			}
			return tidy(w.b.String()), nil
		case html.TextToken:
			if skip != "" || (inHead && !inTitle) {
				continue
			}
			w.text(string(z.Text()))
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			nameB, hasAttr := z.TagName()
			name := string(nameB)
			start := tt != html.EndTagToken
			if skip != "" {
				if name == skip {
					switch {
					case tt == html.StartTagToken:
						skipN++
					case tt == html.EndTagToken:
						skipN--
					}
					if skipN == 0 {
						skip = ""
					}
				}
				continue
			}
			if start && hidden(z, hasAttr) || start && skipTags[name] {
				if tt == html.StartTagToken && !voidTag(name) {
					skip, skipN = name, 1
				}
				continue
			}
			switch {
			case name == "head":
				inHead = start && tt == html.StartTagToken
				continue
			case name == "body" || name == "html":
				inHead = false
			case inHead && start && !headTags[name]:
				inHead = false // an element that implies </head>
			}
			if name == "title" {
				inTitle = start && tt == html.StartTagToken
			}
			switch name {
			case "pre", "textarea", "listing", "plaintext":
				if tt == html.StartTagToken {
					w.pre++
				} else if tt == html.EndTagToken && w.pre > 0 {
					w.pre--
				}
			case "table":
				if tt == html.StartTagToken {
					firstCol = append(firstCol, true)
				} else if tt == html.EndTagToken && len(firstCol) > 1 {
					firstCol = firstCol[:len(firstCol)-1]
				}
			case "tr":
				firstCol[len(firstCol)-1] = true
			case "td", "th":
				if start {
					w.cell(firstCol[len(firstCol)-1])
					firstCol[len(firstCol)-1] = false
				}
				continue
			}
			switch {
			case name == "br":
				w.lineBreak()
			case paraTags[name]:
				w.brk(2)
			case lineTags[name]:
				w.brk(1)
			}
		}
	}
}

// hidden reports whether the current start tag has the hidden attribute or
// an inline style with display:none or visibility:hidden.
func hidden(z *html.Tokenizer, hasAttr bool) bool {
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		switch string(k) {
		case "hidden":
			return true
		case "style":
			s := strings.ToLower(strings.Join(strings.Fields(string(v)), ""))
			if strings.Contains(s, "display:none") || strings.Contains(s, "visibility:hidden") {
				return true
			}
		}
	}
	return false
}

func voidTag(name string) bool {
	switch name {
	case "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr":
		return true
	}
	return false
}

// tidy trims trailing spaces on lines and leading/trailing blank lines,
// and limits runs of blank lines to one.
func tidy(s string) string {
	lines := strings.Split(s, "\n")
	out := lines[:0]
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}
