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
