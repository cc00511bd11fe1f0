package offline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// syntheticContract is about n sentences of contract-like text with page
// markers every 40 sentences.
func syntheticContract(n int) string {
	words := strings.Fields("licensee licensor shall pay fee within days term renewal terminate notice breach liability cap indemnify claims confidential information governing law courts invoice software support hosting service level credit")
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i%40 == 0 {
			fmt.Fprintf(&b, "\n[page %d]\n", i/40+1)
		}
		fmt.Fprintf(&b, "%d.%d The %s %s the %s and the %s under clause %d within %d days. ",
			i/10+1, i%10, words[i%len(words)], words[(i*7)%len(words)], words[(i*13)%len(words)], words[(i*17)%len(words)], i%31, 10+i%50)
	}
	return b.String()
}

func BenchmarkSummarize(b *testing.B) {
	for _, n := range []int{500, 5000} {
		doc := syntheticContract(n) // 5000 sentences ≈ 400 KB ≈ 100k tokens
		b.Run(fmt.Sprintf("sentences=%d", n), func(b *testing.B) {
			c := New(Options{})
			req := llm.Request{Parts: []llm.Part{{Text: doc, Document: true}}}
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := c.Complete(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCaption1344(b *testing.B) {
	data := jpegBytesB(b, noise(1344, 896, 0))
	c := New(Options{})
	req := llm.Request{Schema: &llm.Schema{Name: "caption"}, Parts: []llm.Part{{Image: &llm.Image{MIME: "image/jpeg", Data: data}}}}
	for b.Loop() {
		if _, err := c.Complete(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
