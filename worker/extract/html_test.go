package extract

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/unicode"
)

const page = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Master  Services
    Agreement</title>
  <style>body { color: red } .x::after { content: "STYLE" }</style>
  <script>var secret = "SCRIPT <p>not a tag</p>";</script>
  <link rel="stylesheet" href="x.css">
</head>
<body>
  <noscript>Please enable JAVASCRIPT.</noscript>
  <template><p>TEMPLATE text</p></template>
  <h1>Terms &amp; Conditions</h1>
  <p>The   fee is &euro;100&nbsp;per
     month &lt;net&gt; &#8212; payable <b>in</b> <i>advance</i>.</p>
  <p hidden>HIDDEN paragraph</p>
  <div style="display: none">INVISIBLE div <div>nested</div></div>
  <ul><li>First item</li><li>Second<br>item</li></ul>
  <table>
    <tr><th>Party</th><th>Role</th></tr>
    <tr><td>Acme</td><td>Supplier</td></tr>
  </table>
  <pre>line 1
    indented   line 2</pre>
  <svg><text>SVG label</text></svg>
  <p>Last&#x21;</p>
</body>
</html>`

func TestHTMLVisibleText(t *testing.T) {
	got, err := HTML([]byte(page))
	if err != nil {
		t.Fatal(err)
	}
	want := "Master Services Agreement\n\n" +
		"Terms & Conditions\n\n" +
		"The fee is €100 per month <net> — payable in advance.\n\n" +
		"First item\nSecond\nitem\n\n" +
		"Party | Role\nAcme | Supplier\n\n" +
		"line 1\n    indented   line 2\n\n" +
		"Last!"
	if got != want {
		t.Fatalf("got:\n%s\n---\nwant:\n%s\n---\n%q", got, want, got)
	}
	for _, bad := range []string{"STYLE", "SCRIPT", "secret", "JAVASCRIPT", "TEMPLATE", "HIDDEN", "INVISIBLE", "nested", "SVG"} {
		if strings.Contains(got, bad) {
			t.Errorf("invisible text %q leaked", bad)
		}
	}
}

func TestHTMLCharset(t *testing.T) {
	cyr := "Настоящий договор заключен между сторонами."
	lat := "Le garçon a mangé une crème brûlée."
	wrap := func(meta, body string) string {
		return "<html><head>" + meta + "<title>T</title></head><body><p>" + body + "</p></body></html>"
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"meta charset windows-1251", encode(t, charmap.Windows1251, wrap(`<meta charset="windows-1251">`, cyr)), cyr},
		{"http-equiv koi8-r", encode(t, charmap.KOI8R, wrap(`<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">`, cyr)), cyr},
		{"meta shift_jis", encode(t, japanese.ShiftJIS, wrap(`<meta charset="shift_jis">`, "本契約は甲と乙の間で締結される。")), "本契約は甲と乙の間で締結される。"},
		{"meta latin1", encode(t, charmap.ISO8859_1, wrap(`<meta charset="iso-8859-1">`, lat)), lat},
		{"utf-8 mislabelled latin1", []byte(wrap(`<meta charset="iso-8859-1">`, lat)), lat},
		{"no meta, latin1 bytes", encode(t, charmap.Windows1252, wrap("", lat+" “Quoted” text…")), lat + " “Quoted” text…"},
		{"no meta, utf-8 after 1024 bytes", []byte(wrap("", strings.Repeat("a ", 600)+lat)), strings.Repeat("a ", 599) + "a " + lat},
		{"utf-16le bom", encode(t, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), wrap(`<meta charset="utf-16">`, cyr)), cyr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HTML(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			want := "T\n\n" + strings.TrimSpace(tc.want)
			if got != want {
				t.Fatalf("got %q\nwant %q", got, want)
			}
		})
	}
}

func TestHTMLBinary(t *testing.T) {
	_, err := HTML([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00\x00\x00\x01\x00"))
	if !errors.Is(err, ErrUnsupportedEncoding) {
		t.Fatalf("got %v, want ErrUnsupportedEncoding", err)
	}
}

func TestHTMLImplicitHead(t *testing.T) {
	// No </head>, no <body>: the first body element ends the head.
	got, err := HTML([]byte("<html><head><title>Doc</title><meta name=x content=y>\n<p>Body text</p>"))
	if err != nil {
		t.Fatal(err)
	}
	if got != "Doc\n\nBody text" {
		t.Fatalf("got %q", got)
	}
}

func FuzzHTML(f *testing.F) {
	f.Add([]byte(page))
	f.Add([]byte("<table><tr><td>a<table><tr><td>b</table></td><td>c"))
	f.Add([]byte("<meta charset=koi8-r><p>\xf0\xd2\xc9"))
	f.Add([]byte("<pre>\r\n x</pre><br><br><br>y"))
	f.Add([]byte("<template><template></template>x</template>y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := HTML(data)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedEncoding) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 output %q", s)
		}
		if strings.Contains(s, "\n\n\n") || strings.HasPrefix(s, "\n") || strings.HasSuffix(s, "\n") {
			t.Fatalf("untidy output %q", s)
		}
	})
}
