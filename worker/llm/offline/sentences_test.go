package offline

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/prompts"
)

func TestSplitSentences(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"simple", "One sentence. Another one! A third? Done",
			[]string{"One sentence.", "Another one!", "A third?", "Done"}},
		{"abbreviations", "Mr. Smith met Dr. Jones of Acme Inc. in Berlin. They signed.",
			[]string{"Mr. Smith met Dr. Jones of Acme Inc. in Berlin.", "They signed."}},
		{"dotted abbreviations", "Fees, e.g. setup fees, i.e. one-off costs, are due. The U.S. Government may audit.",
			[]string{"Fees, e.g. setup fees, i.e. one-off costs, are due.", "The U.S. Government may audit."}},
		{"decimals and amounts", "The rate is 3.5 percent. The fee is USD 1,250.00. Version 2.1.4 applies.",
			[]string{"The rate is 3.5 percent.", "The fee is USD 1,250.00.", "Version 2.1.4 applies."}},
		{"initials", "The lease is signed by J. R. Tolkien. He pays rent.",
			[]string{"The lease is signed by J. R. Tolkien.", "He pays rent."}},
		{"numbered list", "1. Definitions apply. 2. Term is one year.",
			[]string{"1. Definitions apply.", "2. Term is one year."}},
		{"quotes", `He said "Stop." Then he left. (See clause 4.) Next.`,
			[]string{`He said "Stop."`, "Then he left.", "(See clause 4.)", "Next."}},
		{"lower case after period", "See sec. 4 and no. 12 below. Also art. 5.",
			[]string{"See sec. 4 and no. 12 below.", "Also art. 5."}},
		{"ellipsis", "Wait... The rest follows. And so on… Fine.",
			[]string{"Wait...", "The rest follows.", "And so on…", "Fine."}},
		{"cjk", "本契約は二年間有効とする。甲は乙に料金を支払う！本当に？はい。",
			[]string{"本契約は二年間有効とする。", "甲は乙に料金を支払う！", "本当に？", "はい。"}},
		{"cjk closing quote", "他说：「好的。」然后离开了。",
			[]string{"他说：「好的。」", "然后离开了。"}},
		{"mixed cjk and latin", "付款期限为30天。The term is 2 years.",
			[]string{"付款期限为30天。", "The term is 2 years."}},
		{"wrapped lines join", "The Licensee shall pay\nthe fees within\nthirty days.",
			[]string{"The Licensee shall pay the fees within thirty days."}},
		{"blank line ends paragraph", "Title without stop\n\nBody text here.",
			[]string{"Title without stop", "Body text here."}},
		{"headings", "ARTICLE 5 TERMINATION\nEither party may terminate.\n5.1 Notice\nNotice must be written.",
			[]string{"ARTICLE 5 TERMINATION", "Either party may terminate.", "5.1 Notice", "Notice must be written."}},
		{"short wrapped line is not a heading", "The Licensee shall pay\nAcme the fees.",
			[]string{"The Licensee shall pay Acme the fees."}},
		{"empty", " \n\t ", nil},
	}
	for _, c := range cases {
		if got := splitSentences(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: splitSentences(%q)\n got %q\nwant %q", c.name, c.in, got, c.want)
		}
	}
}

func TestSplitLongRunIsCapped(t *testing.T) {
	in := strings.Repeat("word ", 2000) // 10,000 bytes, no punctuation
	got := splitSentences(in)
	if len(got) < 8 {
		t.Fatalf("got %d pieces, want the run cut into >= 8", len(got))
	}
	for _, s := range got {
		if len(s) > maxSentenceBytes || strings.HasPrefix(s, "wor ") {
			t.Fatalf("bad piece (%d bytes): %.40q", len(s), s)
		}
	}
	cjk := strings.Repeat("条", 1000) // no spaces at all: cut anywhere, keep UTF-8 intact
	for _, s := range splitSentences(cjk) {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 piece %q", s)
		}
	}
}

func TestSplitDocumentPages(t *testing.T) {
	in := "Cover note.\n" + prompts.PageMarker(1) + "\nFirst page text. Still page one.\n" +
		prompts.PageMarker(2) + "\nSecond page."
	got := splitDocument(in)
	want := []sentence{
		{text: "Cover note."},
		{text: "First page text.", pages: []int{1}},
		{text: "Still page one.", pages: []int{1}},
		{text: "Second page.", pages: []int{2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitDocument:\n got %+v\nwant %+v", got, want)
	}
}

var markerRE = regexp.MustCompile(prompts.PageMarkerPattern)

func stripSpace(s string) string { return strings.Join(strings.Fields(s), "") }

func FuzzSplitSentences(f *testing.F) {
	for _, s := range []string{
		"Mr. Smith paid 3.5 USD. Then he left!", "本契約は有効。甲は支払う！", "a.b.c. D. e... F?! \"G.\" (H.)",
		"[page 1]\nOne. [page 2] Two.", "1. X\n\n2. Y", "ARTICLE 1\nText.", "\xff\xfe. A.", strings.Repeat("x", 3000),
		"[pa[page 1]ge 2] x", "。。！？", "...", "a\n \n b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sents := splitDocument(in)
		var b strings.Builder
		for _, s := range sents {
			if s.text == "" || s.text != strings.Join(strings.Fields(s.text), " ") {
				t.Fatalf("sentence not trimmed/collapsed or empty: %q", s.text)
			}
			if len(s.text) > maxSentenceBytes+utf8.UTFMax {
				t.Fatalf("sentence of %d bytes exceeds the cap", len(s.text))
			}
			b.WriteString(s.text)
		}
		// Nothing but whitespace and page markers is lost or reordered.
		if got, want := stripSpace(b.String()), stripSpace(markerRE.ReplaceAllString(in, "")); got != want {
			t.Fatalf("content changed:\n got %q\nwant %q", got, want)
		}
	})
}
