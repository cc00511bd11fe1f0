package extract

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

func encode(t testing.TB, e encoding.Encoding, s string) []byte {
	t.Helper()
	b, err := e.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatalf("encode test input: %v", err)
	}
	return b
}

const sample = "Contract № 7 — “quoted”, naïve café, 日本語, emoji 🎉.\r\nSecond line\rThird line\n"
const sampleNorm = "Contract № 7 — “quoted”, naïve café, 日本語, emoji 🎉.\nSecond line\nThird line\n"

func TestTextUnicode(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"utf8", []byte(sample)},
		{"utf8 bom", append([]byte{0xEF, 0xBB, 0xBF}, sample...)},
		{"utf16le bom", encode(t, unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), sample)},
		{"utf16be bom", encode(t, unicode.UTF16(unicode.BigEndian, unicode.UseBOM), sample)},
		{"utf32le bom", encode(t, utf32.UTF32(utf32.LittleEndian, utf32.UseBOM), sample)},
		{"utf32be bom", encode(t, utf32.UTF32(utf32.BigEndian, utf32.UseBOM), sample)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Text(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != sampleNorm {
				t.Fatalf("got %q\nwant %q", got, sampleNorm)
			}
		})
	}
}

func TestTextLegacy(t *testing.T) {
	tests := []struct {
		name string
		enc  encoding.Encoding
		text string
	}{
		{"latin1 short", charmap.ISO8859_1, "Café crème brûlée, déjà vu.\n"},
		{"latin1 long", charmap.ISO8859_1, strings.Repeat("Le garçon a mangé une crème brûlée à la fête de Noël. ", 5)},
		{"windows-1252 punctuation", charmap.Windows1252, "He said “hello” – and left… it cost €5.\n"},
		{"windows-1251", charmap.Windows1251, strings.Repeat("Настоящий договор заключен между сторонами о нижеследующем. ", 3)},
		{"koi8-r", charmap.KOI8R, strings.Repeat("Настоящий договор заключен между сторонами. ", 3)},
		{"shift_jis", japanese.ShiftJIS, strings.Repeat("本契約は、甲と乙の間で締結されるものとする。第一条 目的。", 3)},
		{"gb18030", simplifiedchinese.GB18030, strings.Repeat("本合同由甲方和乙方签订，双方同意以下条款。第一条 目的。", 3)},
		{"euc-kr", korean.EUCKR, strings.Repeat("이 계약은 갑과 을 사이에 체결되며 다음과 같이 합의한다. ", 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := encode(t, tc.enc, tc.text)
			if utf8.Valid(in) {
				t.Fatal("test input must not be valid UTF-8")
			}
			got, err := Text(in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.text {
				t.Fatalf("got %q\nwant %q", got, tc.text)
			}
		})
	}
}

func TestTextUnsupported(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	tests := map[string][]byte{
		"random bytes":      garbage,
		"nul in utf8":       []byte("hello\x00world"),
		"utf16 without bom": []byte("H\x00e\x00l\x00l\x00o\x00 \x00w\x00o\x00r\x00l\x00d\x00"),
		"controls":          []byte("\x01\x02\x03\x04\x05 text \x06\x07\x08\x0e\x0f"),
		"utf16 bom binary":  append([]byte{0xFF, 0xFE}, garbage[:200]...),
		"png":               []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00"),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Text(in)
			if !errors.Is(err, ErrUnsupportedEncoding) {
				t.Fatalf("got %q, %v; want ErrUnsupportedEncoding", got, err)
			}
			if !strings.Contains(err.Error(), "unsupported text encoding") {
				t.Fatalf("unclear message: %v", err)
			}
		})
	}
}

func TestTextNormalise(t *testing.T) {
	pad := strings.Repeat("x", 300) // keeps the controls under 1%
	got, err := Text([]byte("a\r\nb\rc\fd\x1ae\x7ff\u0085g\ufeffh\n\tend" + pad))
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\nb\nc\ndefgh\n\tend" + pad; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, in := range [][]byte{nil, {0xEF, 0xBB, 0xBF}, {0xFF, 0xFE}} {
		if got, err := Text(in); err != nil || got != "" {
			t.Fatalf("empty input % x: got %q, %v; want empty text", in, got, err)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("Caf\xe9\r\n"))
	f.Add([]byte{0xFF, 0xFE, 'a', 0, '\r', 0, '\n', 0})
	f.Add([]byte{0xFE, 0xFF, 0xD8, 0x3C})
	f.Add([]byte{0, 0, 0xFE, 0xFF, 0, 0, 0x11, 0})
	f.Add(encode(f, japanese.ShiftJIS, "本契約は、甲と乙の間"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Text(data)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedEncoding) {
				t.Fatalf("error without sentinel: %v", err)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 output %q", s)
		}
		if strings.ContainsAny(s, "\r\x00\f") {
			t.Fatalf("not normalised: %q", s)
		}
		if again, _ := Text(bytes.Clone(data)); again != s {
			t.Fatal("not deterministic")
		}
	})
}
