package extract

import (
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

func BenchmarkDOCX(b *testing.B) {
	data := docx(b, "word/document.xml", strings.Repeat(docBody, 2000))
	b.SetBytes(int64(len(docHead) + 2000*len(docBody)))
	for b.Loop() {
		if _, err := DOCX(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTextLatin1(b *testing.B) {
	data := encode(b, charmap.ISO8859_1, strings.Repeat("Le garçon a mangé une crème brûlée à la fête de Noël.\n", 20000))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Text(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTML(b *testing.B) {
	data := []byte(strings.Repeat(page, 500))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := HTML(data); err != nil {
			b.Fatal(err)
		}
	}
}
