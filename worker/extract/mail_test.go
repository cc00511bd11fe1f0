package extract

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestMail(t *testing.T) {
	b, err := os.ReadFile("../../jobs/mailparts/testdata/with_pdf_and_jpeg.eml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Mail(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Email message (correspondence)", "From: Ana Lima <ana@example.com>", "Subject: Signed services agreement",
		"Attachments: agreement.pdf, site photo.jpg", "attached are the signed agreement"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "JFIF") || strings.Contains(got, "%PDF") {
		t.Error("attachment bytes in the message's text")
	}
	b, _ = os.ReadFile("../../jobs/mailparts/testdata/bomb_nested_parts.eml")
	if _, err := Mail(b); !errors.Is(err, ErrMail) {
		t.Errorf("bomb: %v", err)
	}
}
