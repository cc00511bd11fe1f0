package mailparts

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/html/charset"
)

// ErrBomb: the message is over a structural budget (too deeply nested,
// too many parts, too many bytes in all). Permanent.
var ErrBomb = errors.New("mail: over the message budget")

// ErrMalformed: the bytes are not a readable message. Permanent.
var ErrMalformed = errors.New("mail: malformed message")

// Default budgets.
const (
	DefaultMaxDepth      = 8
	DefaultMaxParts      = 500
	DefaultMaxPartBytes  = 50 << 20
	DefaultMaxTotalBytes = 200 << 20
	// HeadSize is how many leading decoded bytes of an attachment Part.Head
	// keeps (enough for jobs/sniff).
	HeadSize = 4096
)

// Limits are a walk's budgets; zero fields take the defaults.
type Limits struct {
	// MaxDepth caps multipart and message nesting. Default 8.
	MaxDepth int
	// MaxParts caps the parts of the whole message. Default 500.
	MaxParts int
	// MaxPartBytes caps one attachment's decoded size: a larger one is
	// listed with TooLarge set. Default 50 MiB.
	MaxPartBytes int64
	// MaxTotalBytes caps the decoded bytes of all parts. Default 200 MiB.
	MaxTotalBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxPartBytes <= 0 {
		l.MaxPartBytes = DefaultMaxPartBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	return l
}

// Part is one attachment of a message (or of a message nested in it).
type Part struct {
	// Path addresses the part in the outer message (see Open).
	Path string
	// Name is its file name (RFC 2047/2231 decoded, path elements
	// removed); for a nested message without one, its subject + ".eml";
	// for an unnamed part, "part-<path>" with an extension from its type.
	Name string
	// ContentType is its media type ("application/pdf").
	ContentType string
	// Size is its decoded size in bytes (MaxPartBytes+1 when TooLarge).
	Size int64
	// TooLarge: the decoded part is over Limits.MaxPartBytes.
	TooLarge bool
	// Message: a nested message (message/rfc822).
	Message bool
	// Inline: an inline part of the body (Content-Disposition inline,
	// or a Content-ID referenced from HTML), e.g. an image in a signature.
	Inline bool
	// Parent is the Path of the nested message it belongs to; "" for the
	// outer message.
	Parent string
	// Head is its first HeadSize decoded bytes.
	Head []byte
}

// Message is what a message says: its headers, its text body, and every
// attachment down through nested messages.
type Message struct {
	From, To, Cc, Date, Subject string
	// Body is the first text/plain part that is not an attachment
	// (decoded to UTF-8), or else the first text/html one (BodyHTML set).
	Body     string
	BodyHTML bool
	// Parts are the attachments, nested messages and their attachments
	// included, in document order.
	Parts []Part
}

type walker struct {
	lim    Limits
	parts  int
	total  int64
	target string // Open: the path looked for
	found  []byte
	msg    *Message
}

// Read reads a message and lists its attachments.
func Read(data []byte, lim Limits) (*Message, error) {
	w := &walker{lim: lim.withDefaults(), msg: &Message{}}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	dec := new(mime.WordDecoder)
	h := func(k string) string {
		v := m.Header.Get(k)
		if d, err := dec.DecodeHeader(v); err == nil {
			return d
		}
		return v
	}
	w.msg.From, w.msg.To, w.msg.Cc, w.msg.Date, w.msg.Subject = h("From"), h("To"), h("Cc"), h("Date"), h("Subject")
	hdr := textproto.MIMEHeader(m.Header)
	if err := w.entity(hdr, m.Body, rootPath(hdr, ""), "", 0, true); err != nil {
		return nil, err
	}
	return w.msg, nil
}

// Open returns the decoded bytes of the part at path (a nested message:
// the message itself, ready for Read).
func Open(data []byte, path string, lim Limits) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no part path", ErrMalformed)
	}
	w := &walker{lim: lim.withDefaults(), target: path}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	hdr := textproto.MIMEHeader(m.Header)
	if err := w.entity(hdr, m.Body, rootPath(hdr, ""), "", 0, false); err != nil && w.found == nil {
		return nil, err
	}
	if w.found == nil {
		return nil, fmt.Errorf("%w: no part %s", ErrMalformed, path)
	}
	return w.found, nil
}

// rootPath is the path of a message's root entity: the message's own path
// when it is a multipart (its children are numbered below it), else its
// first child's, so that a leaf never shares the path of its message.
func rootPath(h textproto.MIMEHeader, path string) string {
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && strings.HasPrefix(mt, "multipart/") {
		return path
	}
	return child(path, 1)
}

func child(path string, i int) string {
	if path == "" {
		return strconv.Itoa(i)
	}
	return path + "." + strconv.Itoa(i)
}

// entity walks one MIME entity at path (its parent message at parent).
// top is true for the outer message's own body parts.
func (w *walker) entity(h textproto.MIMEHeader, body io.Reader, path, parent string, depth int, top bool) error {
	if w.found != nil {
		return nil
	}
	if depth > w.lim.MaxDepth {
		return fmt.Errorf("%w: parts nested deeper than %d levels", ErrBomb, w.lim.MaxDepth)
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		return fmt.Errorf("%w: more than %d MIME parts", ErrBomb, w.lim.MaxParts)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt == "" {
		mt, params = "text/plain", map[string]string{"charset": "us-ascii"}
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for i := 1; ; i++ {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if i == 1 {
					return fmt.Errorf("%w: %s: %v", ErrMalformed, mt, err)
				}
				return nil // a damaged tail: keep what was read
			}
			if err := w.entity(p.Header, p, child(path, i), parent, depth+1, top); err != nil {
				return err
			}
			if w.found != nil {
				return nil
			}
		}
	}
	disp, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	name := fileName(dparams["filename"], params["name"])
	data, size, tooLarge, err := w.decoded(h, body)
	if err != nil {
		return err
	}
	if w.target != "" {
		if path == w.target {
			if tooLarge {
				return fmt.Errorf("%w: part %s is over %d bytes decoded", ErrBomb, path, w.lim.MaxPartBytes)
			}
			w.found = data
			if w.found == nil {
				w.found = []byte{}
			}
			return nil
		}
		if mt == "message/rfc822" && strings.HasPrefix(w.target, path+".") {
			return w.nested(data, path, depth)
		}
		return nil
	}
	isText := (mt == "text/plain" || mt == "text/html") && disp != "attachment" && name == ""
	if isText && top && (w.msg.Body == "" || (w.msg.BodyHTML && mt == "text/plain")) {
		w.msg.Body, w.msg.BodyHTML = strings.ReplaceAll(utf8Text(data, params["charset"]), "\r\n", "\n"), mt == "text/html"
		return nil
	}
	if isText {
		return nil // an alternative of the body, or a nested message's body
	}
	p := Part{Path: path, Name: name, ContentType: mt, Size: size, TooLarge: tooLarge, Parent: parent,
		Message: mt == "message/rfc822", Inline: disp == "inline" || (disp == "" && h.Get("Content-Id") != "")}
	p.Head = data[:min(len(data), HeadSize)]
	if p.Message && !tooLarge {
		if sub, err := mail.ReadMessage(bytes.NewReader(data)); err == nil && p.Name == "" {
			subj, _ := new(mime.WordDecoder).DecodeHeader(sub.Header.Get("Subject"))
			p.Name = safeName(cmpOr(subj, "message")) + ".eml"
		}
	}
	if p.Name == "" {
		p.Name = "part-" + path + extFor(mt)
	}
	w.msg.Parts = append(w.msg.Parts, p)
	if p.Message && !tooLarge {
		return w.nested(data, path, depth)
	}
	return nil
}

// nested walks a message/rfc822 part's own message.
func (w *walker) nested(data []byte, path string, depth int) error {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil // listed, not walked: the worker reports it unreadable
	}
	hdr := textproto.MIMEHeader(m.Header)
	return w.entity(hdr, m.Body, rootPath(hdr, path), path, depth+1, false)
}

// decoded reads a leaf part's body through its transfer encoding, up to
// MaxPartBytes (a larger part reports tooLarge, its head kept).
func (w *walker) decoded(h textproto.MIMEHeader, body io.Reader) ([]byte, int64, bool, error) {
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: bufio.NewReader(body)})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, w.lim.MaxPartBytes+1))
	if err != nil && buf.Len() == 0 {
		return nil, 0, false, fmt.Errorf("%w: part body: %v", ErrMalformed, err)
	}
	w.total += n
	if w.total > w.lim.MaxTotalBytes {
		return nil, 0, false, fmt.Errorf("%w: over %d decoded bytes in all", ErrBomb, w.lim.MaxTotalBytes)
	}
	if n > w.lim.MaxPartBytes {
		return buf.Bytes()[:min(buf.Len(), HeadSize)], n, true, nil
	}
	return buf.Bytes(), n, false, nil
}

// base64Cleaner drops the line breaks and spaces base64 bodies carry.
type base64Cleaner struct{ r *bufio.Reader }

func (c *base64Cleaner) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		switch b {
		case '\r', '\n', ' ', '\t':
			continue
		}
		p[n] = b
		n++
	}
	return n, nil
}

func utf8Text(b []byte, cs string) string {
	if cs == "" || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "us-ascii") {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	r, err := charset.NewReaderLabel(cs, bytes.NewReader(b))
	if err != nil {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	out, _ := io.ReadAll(r)
	return string(out)
}

func fileName(names ...string) string {
	dec := new(mime.WordDecoder)
	for _, n := range names {
		if n == "" {
			continue
		}
		if d, err := dec.DecodeHeader(n); err == nil {
			n = d
		}
		if s := safeName(n); s != "" {
			return s
		}
	}
	return ""
}

// safeName keeps a name's last path element without control characters,
// at most 120 bytes (its extension kept).
func safeName(n string) string {
	if i := strings.LastIndexAny(n, `/\`); i >= 0 {
		n = n[i+1:]
	}
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7F || r == ':' || r == '*' || r == '?' || r == '"' || r == '<' || r == '>' || r == '|' {
			return -1
		}
		return r
	}, n)
	n = strings.Trim(strings.TrimSpace(n), ".")
	if len(n) > 120 {
		ext := ""
		if i := strings.LastIndexByte(n, '.'); i >= 0 && len(n)-i <= 10 {
			ext = n[i:]
		}
		n = strings.ToValidUTF8(n[:120-len(ext)], "") + ext
	}
	return n
}

func extFor(mt string) string {
	switch mt {
	case "application/pdf":
		return ".pdf"
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "message/rfc822":
		return ".eml"
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
