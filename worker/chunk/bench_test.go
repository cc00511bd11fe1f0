package chunk

import "testing"

func BenchmarkSplit(b *testing.B) {
	text := prose(9, 4000) // ≈ 2.5 MB of prose
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Split(text, 2000, 200)
	}
}

func BenchmarkEstimateTokens(b *testing.B) {
	text := prose(9, 1000)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		EstimateTokens(text)
	}
}
