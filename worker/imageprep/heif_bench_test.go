package imageprep

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPrepareHEIF prepares the same photo (seeding, the corpus's
// dandelions) stored as JPEG, AVIF and HEIC, for the decoders' time and
// memory side by side (-benchmem counts the WebAssembly modules' linear
// memory: wazero allocates it in Go). LLAMAPIPE_BENCH_HEIF_DIR may name a
// folder with more (*.avif, *.heic, *.jpg), e.g. full-size encodes made
// with avifenc and heif-enc; the README has the numbers and commands.
func BenchmarkPrepareHEIF(b *testing.B) {
	files := map[string]string{
		"corpus-seeding-1024.jpg":  filepath.Join(corpusDir(b), "formats", "seeding_really_jpeg.png"),
		"corpus-seeding-1024.avif": filepath.Join(corpusDir(b), "formats", "seeding.avif"),
		"corpus-seeding-1024.heic": filepath.Join(corpusDir(b), "formats", "seeding.heic"),
	}
	if dir := os.Getenv("LLAMAPIPE_BENCH_HEIF_DIR"); dir != "" {
		for _, g := range []string{"*.avif", "*.heic", "*.jpg"} {
			m, _ := filepath.Glob(filepath.Join(dir, g))
			for _, p := range m {
				files[filepath.Base(p)] = p
			}
		}
	}
	for name, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Prepare(context.Background(), data, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
