package localstore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/storage"
)

// BenchmarkPutParallel measures durable Puts of 3 KB results from 64
// goroutines at once (as a worker at --concurrency 64 writes them) into the
// test's temporary folder (TMPDIR: put it on the disk to measure), with
// the default group commit (per-file fsyncs), with group commits of one
// syncfs (Linux), and with one commit per Put (fsync of the file, rename, fsync of the folder:
// what Put did before group commits), in one run. Run:
// TMPDIR=/some/disk go test -run '^$' -bench PutParallel -benchtime 3000x ./storage/localstore/
func BenchmarkPutParallel(b *testing.B) {
	for _, c := range append([]namedSyncer{
		{"group-fsync", fsyncer{}, 0}, // the default
		{"per-put-fsync", fsyncer{}, math.MaxInt},
	}, benchSyncers...) {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.commits.sync, s.commits.max = c.sync, c.max
			body := bytes.Repeat([]byte("x"), 3000)
			var n atomic.Int64
			b.SetParallelism(64) // × GOMAXPROCS: at least 64 Puts at once
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
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
			wall, cpu := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(b.N)/wall.Seconds(), "puts/s")
			b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/put")
		})
	}
}

// namedSyncer is a way to commit, measured by BenchmarkPutParallel.
type namedSyncer struct {
	name string
	sync syncer
	max  int // commits at once (0: maxCommits)
}

// benchSyncers are more syncers to measure (syncfs on Linux).
var benchSyncers []namedSyncer

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkItemWrites measures what one short item writes, from 64
// goroutines at once (a worker at --concurrency 64), the way the worker
// wrote it before issue 16's second round and the way it writes it now,
// in one run:
//
//   - per-put: a durable Put each for the kept model answer (in a folder
//     of its own), the result JSON, the digest Markdown and the re-run
//     marker, then the kept answer deleted (with its folder);
//   - group: the kept answer volatile (no sync) in the batch's work
//     folder, the two results in one PutGroup, the marker volatile, the
//     kept answer deleted.
//
// Run: TMPDIR=/some/disk go test -run '^$' -bench ItemWrites -benchtime 2000x -count 3 ./storage/localstore/
func BenchmarkItemWrites(b *testing.B) {
	answer, result, md := bytes.Repeat([]byte("a"), 1200), bytes.Repeat([]byte("r"), 3000), bytes.Repeat([]byte("m"), 2000)
	for _, c := range []struct {
		name string
		item func(ctx context.Context, s *Store, i int64) error
	}{
		{"per-put", func(ctx context.Context, s *Store, i int64) error {
			kept := fmt.Sprintf(".llamapipe/work/b1/item-%d/answer-summary.json", i)
			for _, o := range []struct {
				key  string
				data []byte
			}{{kept, answer}, {fmt.Sprintf("docs/item-%d.summary.json", i), result}, {fmt.Sprintf("docs/item-%d.summary.md", i), md},
				{fmt.Sprintf(".llamapipe/fingerprints/docs/item-%d.summarize.fp", i), nil}} {
				if err := s.Put(ctx, o.key, bytes.NewReader(o.data), int64(len(o.data)), ""); err != nil {
					return err
				}
			}
			return s.Delete(ctx, kept)
		}},
		{"group", func(ctx context.Context, s *Store, i int64) error {
			kept := fmt.Sprintf(".llamapipe/work/b1/answer-item-%d-summary.json", i)
			if err := s.PutVolatile(ctx, kept, bytes.NewReader(answer), int64(len(answer)), ""); err != nil {
				return err
			}
			if err := s.PutGroup(ctx, []storage.Object{{Key: fmt.Sprintf("docs/item-%d.summary.json", i), Data: result},
				{Key: fmt.Sprintf("docs/item-%d.summary.md", i), Data: md}}); err != nil {
				return err
			}
			if err := s.PutVolatile(ctx, fmt.Sprintf(".llamapipe/fingerprints/docs/item-%d.summarize.fp", i), bytes.NewReader(nil), 0, ""); err != nil {
				return err
			}
			return s.Delete(ctx, kept)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(32) // × GOMAXPROCS: 64 items at once on 2 cores
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.item(context.Background(), s, n.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			wall, cpu := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(b.N)/wall.Seconds(), "items/s")
			b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/item")
		})
	}
}
