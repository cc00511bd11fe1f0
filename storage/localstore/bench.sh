#!/bin/sh
# Durable-write benchmark (issue 16): Puts from 64 goroutines with group
# commits against one fsync pair per Put, an item's writes as the worker
# made them before and makes them now, then the C = 64, 200 ms pipeline
# writing to a folder on disk and to tmpfs, alternating, each as a share of
# the ideal C ÷ latency = 320 requests/s and the disk run as a ratio to the
# tmpfs run beside it.
# Usage: storage/localstore/bench.sh  (DISK: a folder on a disk, not tmpfs;
# N: pipeline pairs [3])
set -eu
cd "$(dirname "$0")/../.."
DISK=${DISK:-$HOME/.cache/llamapipe-bench-disk}
SHM=${SHM:-/dev/shm/llamapipe-bench}
N=${N:-3}
mkdir -p "$DISK" "$SHM"
echo "== Put, 3 KB, 64 at once, in $DISK ($(findmnt -no FSTYPE -T "$DISK"))"
TMPDIR=$DISK go test -run '^$' -bench PutParallel -benchtime 3000x ./storage/localstore/ | grep Benchmark
echo "== one short item's writes, 64 at once: a durable Put each (before) vs volatile kept answer + one PutGroup + volatile marker"
TMPDIR=$DISK go test -run '^$' -bench ItemWrites -benchtime 2000x -count 3 ./storage/localstore/ | grep Benchmark
bin=$(mktemp -d)/llamapipe
go build -o "$bin" ./cmd/llamapipe
rps() {
	"$bin" bench --photos 0 --docs 3000 --pages 1 -c 64 --latency 200ms --measure pipeline --out "$1" 2>&1 |
		awk -F'|' '/model requests\/s/ {gsub(/ /, "", $3); print $3}'
	rm -rf "${1:?}"/bench-*
}
echo "== pipeline, 3,000 one-page documents, C = 64, 200 ms model: requests/s (share of 320)"
for i in $(seq "$N"); do
	d=$(rps "$DISK")
	s=$(rps "$SHM")
	awk -v d="$d" -v s="$s" 'BEGIN { printf "disk %.1f (%.0f%%)  tmpfs %.1f (%.0f%%)  disk/tmpfs %.2f\n", d, d/3.2, s, s/3.2, d/s }'
done
