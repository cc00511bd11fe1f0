package evidence_test

import (
	"encoding/json"
	"testing"

	"github.com/llamapipe/llamapipe/worker/evidence"
)

func TestNormalize(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"whitespace", "  The  Supplier\n\tshall\r\ndeliver ", "the supplier shall deliver"},
		{"hyphen at line end", "termi-\nnation of this Agree-\n  ment", "termination of this agreement"},
		{"soft hyphen", "termi\u00adnation", "termination"},
		{"hyphen within a line kept", "non-exclusive, self-\n  renewing", "non-exclusive, selfrenewing"},
		{"hyphenated word copied with a space", "termi- nation", "termination"},
		{"typographic quotes", "the \u201cServices\u201d of the Licensor\u2019s", `the "services" of the licensor's`},
		{"dashes", "2020\u20132021 \u2014 net", "2020-2021 - net"},
		{"ligature", "\ufb01nal o\ufb00er", "final offer"},
		{"no-break space", "30\u00a0days", "30 days"},
		{"case", "GOVERNED BY the Laws", "governed by the laws"},
		{"surrounding quotes", "\u201cshall pay\u201d", "shall pay"},
	}
	for _, c := range cases {
		if got := evidence.Normalize(c.in); got != c.want {
			t.Errorf("%s: Normalize(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	text := "[page 1]\nThis Agreement is governed by the laws of the State of New York.\n\n" +
		"[page 2]\nThe Customer shall pay each invoice within thirty (30) days. Late pay-\nments bear interest\n\n" +
		"[page 3]\nat 1.5% per month.\n"
	src := evidence.NewSource(text, []int{4})
	cases := []struct {
		quote string
		pages []int
		want  evidence.Status
	}{
		{"governed by the laws of the State of New York", []int{1}, evidence.Found},
		{"GOVERNED  BY THE\nLAWS of the state of new york.", []int{1}, evidence.Found},
		{"governed by the laws of the State of New York", []int{2}, evidence.NotFound},
		{"Late payments bear interest at 1.5% per month", []int{2, 3}, evidence.Found},
		{"Late payments bear interest at 1.5% per month", []int{3, 2}, evidence.Found},
		{"Late payments bear interest at 1.5% per month", []int{2}, evidence.NotFound},
		{"The Customer shall pay … within thirty (30) days", []int{2}, evidence.Found},
		{"within thirty (30) days ... The Customer shall pay", []int{2}, evidence.NotFound},
		{"\u201cshall pay each invoice\u201d", []int{2}, evidence.Found},
		{"The Supplier may terminate at will", []int{1, 2, 3}, evidence.NotFound},
		{"anything", []int{4}, evidence.Unverifiable},
		{"anything", []int{3, 4}, evidence.NotFound},
		{"shall pay", nil, evidence.NotFound},
		{"  ", []int{1}, evidence.Missing},
	}
	for _, c := range cases {
		if got := src.Check(c.quote, c.pages); got != c.want {
			t.Errorf("Check(%q, %v) = %s, want %s", c.quote, c.pages, got, c.want)
		}
	}
	// Text without page markers is checked as a whole, whatever the pages.
	plain := evidence.NewSource("Rent is due on the first day of each month.", nil)
	if got := plain.Check("rent is due on the first day", []int{7}); got != evidence.Found {
		t.Errorf("plain text: %s", got)
	}
}

func TestAnnotateMarksEveryQuoteObject(t *testing.T) {
	src := evidence.NewSource("[page 1]\nAcme Corp (\"Supplier\") and Beta LLC.\n[page 2]\nThe term is two years.\n", []int{3})
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{
		"document_type": "agreement",
		"parties": [{"name":"Acme Corp","role":"supplier","quote":"Acme Corp (“Supplier”)","pages":[1]}],
		"term": {"value":"Two years","quote":"The term is two years.","pages":[2]},
		"payment_terms": {"value":"Net 30","quote":"payable within 30 days","pages":[2]},
		"confidentiality": {"value":"","quote":"","pages":[]},
		"indemnities": {"value":"Mutual","quote":"","pages":[]},
		"risky_clauses": [{"clause":"x","quote":"scanned words","pages":[3]}]
	}`), &doc); err != nil {
		t.Fatal(err)
	}
	c, bad := evidence.Annotate(doc, src, true)
	want := evidence.Counts{Quotes: 5, Verified: 2, Unverified: 2, Unverifiable: 1}
	if c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if len(bad) != 2 || bad[0].Field != "indemnities" || bad[1].Field != "payment_terms" {
		t.Fatalf("unverified %+v", bad)
	}
	term := doc["term"].(map[string]any)
	pay := doc["payment_terms"].(map[string]any)
	if term["verified"] != true || term["flagged"] != nil || pay["verified"] != false || pay["flagged"] != true || pay["check"] != "not_found" {
		t.Errorf("term %v, payment %v", term, pay)
	}
	if conf := doc["confidentiality"].(map[string]any); conf["verified"] != nil {
		t.Errorf("an empty field was checked: %v", conf)
	}
	if r := doc["risky_clauses"].([]any)[0].(map[string]any); r["check"] != "unverifiable" || r["flagged"] != nil {
		t.Errorf("scanned quote %v", r)
	}
	if got := evidence.CountsOf(doc); got != want {
		t.Errorf("CountsOf %+v, want %+v", got, want)
	}
	if s := c.String(); s != "2 of 5 quotes found on their pages (1 on scanned pages, unverifiable)" {
		t.Errorf("String %q", s)
	}
}
