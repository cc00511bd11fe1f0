package localstore

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkPutParallel measures durable Puts of 3 KB results from 64
// goroutines at once (as a worker at --concurrency 64 writes them) into the
// test's temporary folder: run it with TMPDIR on the disk to measure.
func BenchmarkPutParallel(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("x"), 3000)
	var n atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS (2 here): 64 at once
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key := fmt.Sprintf("batch/results/item-%d.json", i)
			if err := s.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
