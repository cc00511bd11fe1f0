#!/bin/sh
# Image-preparation benchmark: this package (libjpeg-turbo and pure-Go
# builds) against Debian's vipsthumbnail on ../shared/corpus/images/photos.
# Usage: worker/imageprep/bench.sh  (from anywhere; numbers go to stdout)
set -eu
cd "$(dirname "$0")"
N=${N:-42}   # images per run for Prepare (a multiple of the 14 photos)
echo "== Prepare, libjpeg-turbo (cgo), all photos, ${N} images x3 runs"
go test -run '^$' -bench 'BenchmarkPreparePhotos/all$' -benchtime "${N}x" -count 3 .
echo "== Prepare, same, GOMAXPROCS=1"
go test -run '^$' -bench 'BenchmarkPreparePhotos/all$' -benchtime "${N}x" -count 3 -cpu 1 .
echo "== Prepare, pure Go (-tags imageprep_purego), all photos, 14 images x3 runs"
go test -tags imageprep_purego -run '^$' -bench 'BenchmarkPreparePhotos/all$' -benchtime 14x -count 3 .
echo "== Prepare, 24 MP photo alone (peak RSS of a process doing only this)"
go test -run '^$' -bench 'BenchmarkPreparePhotos/Painting' -benchtime 10x -count 1 .
go test -tags imageprep_purego -run '^$' -bench 'BenchmarkPreparePhotos/Painting' -benchtime 5x -count 1 .
echo "== vipsthumbnail --size 1344 -o %s.jpg[Q=85] (all: 14 photos per process; per-file: one process each)"
go test -run '^$' -bench 'BenchmarkVipsthumbnail/all$' -benchtime 3x -count 3 .
go test -run '^$' -bench 'BenchmarkVipsthumbnail/per-file$' -benchtime 14x -count 1 .
echo "== Fidelity of the reduced-scale decode (PSNR vs full decode + same resize)"
go test -run '^$' -bench 'BenchmarkScaledDecodeQuality' -benchtime 1x -v . | grep -E 'dB|^Benchmark'
