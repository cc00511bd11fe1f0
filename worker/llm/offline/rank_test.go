package offline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// hubText has two sentences (A and B) that share vocabulary with every other
// sentence; the others each cover one topic and share little with each other.
const (
	hubA = "The Licensee shall pay the annual license fee, keep the source code confidential, and indemnify the Licensor against third-party claims."
	hubB = "The Licensor may terminate the license if the Licensee fails to pay the fee, breaches confidentiality, or refuses to indemnify."
)

var hubOthers = []string{
	"Invoices for the annual fee are issued every January.",
	"The weather in the harbour was pleasant during the signing ceremony.",
	"Source code must be stored in an encrypted repository.",
	"Third-party claims are handled by outside counsel.",
	"Breaches must be reported within five business days.",
	"Refreshments were served in the lobby afterwards.",
	"Confidential information excludes material already public.",
	"Late payment of any fee accrues interest at two percent.",
}

func hubDocument() string {
	parts := []string{hubOthers[0], hubOthers[1], hubA, hubOthers[2], hubOthers[3], hubOthers[4], hubB, hubOthers[5], hubOthers[6], hubOthers[7]}
	return strings.Join(parts, " ")
}

func TestSummaryPicksCentralSentences(t *testing.T) {
	sents := splitDocument(hubDocument())
	if len(sents) != 10 {
		t.Fatalf("split into %d sentences, want 10", len(sents))
	}
	top, err := summarize(context.Background(), sents, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{top[0].text, top[1].text}
	if want := []string{hubA, hubB}; !reflect.DeepEqual(got, want) {
		t.Errorf("top 2 = %q\nwant %q", got, want)
	}
	// Off-topic sentences rank last.
	vecs, _ := vectors(sents)
	scores, err := lexRank(context.Background(), vecs)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sents {
		if strings.Contains(s.text, "weather") || strings.Contains(s.text, "Refreshments") {
			for j := range sents {
				if j != i && !strings.Contains(sents[j].text, "weather") && !strings.Contains(sents[j].text, "Refreshments") && scores[j] <= scores[i] {
					t.Errorf("off-topic %q (%.4f) outranks %q (%.4f)", s.text, scores[i], sents[j].text, scores[j])
				}
			}
		}
	}
	sum := 0.0
	for _, s := range scores {
		sum += s
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("scores sum to %v, want 1", sum)
	}
}

func TestSummaryKeepsDocumentOrderAndSkipsDuplicates(t *testing.T) {
	doc := hubB + " " + hubOthers[0] + " " + hubA + " " + hubA
	top, err := summarize(context.Background(), splitDocument(doc), 3)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, s := range top {
		texts = append(texts, s.text)
	}
	if want := []string{hubB, hubOthers[0], hubA}; !reflect.DeepEqual(texts, want) {
		t.Errorf("got %q, want %q (document order, duplicate dropped)", texts, want)
	}
}

func TestSummaryCJK(t *testing.T) {
	doc := "本协议由甲方和乙方签订。甲方应当按月向乙方支付服务费用，乙方应当对甲方的资料保密。" +
		"天气很好。乙方未按时提供服务的，甲方有权解除协议并要求乙方返还服务费用。会议室在三楼。" +
		"服务费用每月结算一次。资料保密义务在协议终止后继续有效。"
	sents := splitDocument(doc)
	if len(sents) != 7 {
		t.Fatalf("split into %d sentences: %+v", len(sents), sents)
	}
	top, err := summarize(context.Background(), sents, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := joinSentences(top)
	want := "甲方应当按月向乙方支付服务费用，乙方应当对甲方的资料保密。乙方未按时提供服务的，甲方有权解除协议并要求乙方返还服务费用。"
	if got != want {
		t.Errorf("CJK summary = %q\nwant %q", got, want)
	}
}

func TestTokenize(t *testing.T) {
	got := tokenize("The Parties' obligations, and 30 days; 契約書")
	want := []string{"party", "obligation", "30", "day", "契約", "約書"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokenize = %q, want %q", got, want)
	}
}

func TestRankCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := summarize(ctx, splitDocument(hubDocument()), 2)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestRankLargeDocument(t *testing.T) {
	// 3,000 sentences: the neighbour cap keeps the graph sparse; the
	// planted hub sentences still win.
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "Clause %d covers topic%d and item%d with note%d. ", i, i%97, i%89, i%83)
		if i == 1234 {
			b.WriteString(hubA + " ")
		}
		if i == 2345 {
			b.WriteString(hubB + " ")
		}
	}
	sents := splitDocument(b.String())
	for i := range sents {
		// Tie the hubs to many clauses so they are central.
		if i%10 == 0 && !strings.HasPrefix(sents[i].text, "The ") {
			sents[i].text += " The licensee pays the license fee and keeps code confidential."
		}
	}
	top, err := summarize(context.Background(), sents, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 {
		t.Fatalf("got %d sentences", len(top))
	}
	for _, s := range top {
		if !strings.Contains(s.text, "licens") {
			t.Errorf("picked %q, want a licence sentence", s.text)
		}
	}
}
