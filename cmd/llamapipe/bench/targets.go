package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// target is one row of --measure targets: what llamapipe measured, its
// reference measured in the same run, their ratio, and the goal.
type target struct{ what, ours, ref, ratio, goal string }

// targets measures each row of issue 16's table in one run, each beside
// its reference, reusing the other measures: the pipeline writing to a
// folder (throughput against the ideal C ÷ latency), image preparation
// against vipsthumbnail on the same generated photos, the enqueue measure
// (rate and Redis per task against bare asynq), the unchanged re-run
// (against one listing of the catalog and one of the markers), and a long
// PDF through the pipeline (pages extracted per page). Sizes are the
// options': --docs × --pages at -c, --photos of --photo-size, --catalog,
// --enqueue-tasks; the PDF has max(--pages, 12) pages.
func (b *bench) targets(ctx context.Context) ([]target, error) {
	base, cleanup, err := b.runDir("targets")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var ts []target
	progress := func(what string) { fmt.Fprintf(b.svc.Progress, "llamapipe: bench: targets: %s\n", what) }

	progress("pipeline to " + base)
	t, err := b.targetDisk(ctx, base)
	if err != nil {
		return nil, err
	}
	ts = append(ts, t)

	progress("image preparation beside vipsthumbnail")
	if t, err = b.targetImages(ctx); err != nil {
		return nil, err
	}
	ts = append(ts, t)

	progress("enqueue beside bare asynq")
	our, bare, err := b.enqueueRun(ctx)
	if err != nil {
		return nil, err
	}
	mem := target{what: fmt.Sprintf("Redis per queued task (%d tasks; payload %d B, bare %d B)", b.enqTasks, our.payload, bare.payload),
		ours: "n/a (Redis memory did not grow: use a private Redis)", ref: "n/a", ratio: "n/a", goal: "≤ 900 B"}
	if our.perTask > 0 && bare.perTask > 0 {
		mem.ours, mem.ref = fmt.Sprintf("%d B", our.perTask), fmt.Sprintf("%d B bare asynq", bare.perTask)
		mem.ratio = fmt.Sprintf("%.2f", float64(our.perTask)/float64(bare.perTask))
	}
	ts = append(ts, mem, target{what: fmt.Sprintf("enqueue rate, %d goroutines (median of %d rounds, the first side alternating)", b.enqG, enqueueRounds),
		ours: fmt.Sprintf("%.0f tasks/s", our.rate), ref: fmt.Sprintf("%.0f tasks/s bare asynq", bare.rate),
		ratio: fmt.Sprintf("%.2f (rounds %.2f–%.2f)", our.ratio, our.ratioMin, our.ratioMax), goal: "≥ 0.9× bare asynq"})

	progress("unchanged re-run")
	u, err := b.unchangedRun(ctx)
	if err != nil {
		return nil, err
	}
	ts = append(ts, target{what: fmt.Sprintf("re-run over an unchanged catalog of %d images (%s), %d model calls", u.n, storeKind(u.src), u.calls),
		ours:  fmt.Sprintf("%.2f s to the manifest (%.2f s ingest)", u.rerun.Seconds(), u.ingest.Seconds()),
		ref:   fmt.Sprintf("%.2f s: one listing of the catalog + one of the markers", u.listings.Seconds()),
		ratio: fmt.Sprintf("%.1f", u.rerun.Seconds()/max(u.listings.Seconds(), 1e-6)),
		goal:  "≤ 10 s at 100,000 images, 0 model calls"})

	progress("long PDF")
	if t, err = b.targetPages(ctx, base); err != nil {
		return nil, err
	}
	return append(ts, t), nil
}

// targetDisk runs the documents through the pipeline (the fake model at
// --latency), writing to base, and compares the model requests per second
// with the ideal C ÷ latency.
func (b *bench) targetDisk(ctx context.Context, base string) (target, error) {
	t := target{what: fmt.Sprintf("pipeline to %s: model requests/s, %d × C = %d, %s model, %d documents × %d pages",
		fsKind(base), b.workers, b.conc, b.latency, b.docs, b.pages), goal: "≥ 0.95× ideal"}
	if b.docs == 0 || b.provider != llm.ProviderOpenAI {
		t.ours, t.ref, t.ratio = "n/a (needs --docs and the fake model server)", "n/a", "n/a"
		return t, nil
	}
	model, fs, closeModel, err := b.model(ctx)
	if err != nil {
		return t, err
	}
	defer closeModel()
	src := base + "/input/documents"
	if _, err := b.generateDocs(ctx, b.svc.Open, src); err != nil {
		return t, err
	}
	r, err := b.batch(ctx, model, fs, src, base+"/results/documents")
	if err != nil {
		return t, err
	}
	if r.done != r.items {
		return t, fmt.Errorf("bench: targets: %d of %d documents done", r.done, r.items)
	}
	rps := float64(r.model.Requests) / r.work.Seconds()
	ideal := float64(b.workers*b.conc) / b.latency.Seconds()
	p50 := percentile(r.durations, 50)
	t.ours = fmt.Sprintf("%.1f req/s (item p50 %d ms)", rps, p50)
	t.ref = fmt.Sprintf("%.1f req/s ideal (C ÷ latency)", ideal)
	t.ratio = fmt.Sprintf("%.2f", rps/ideal)
	return t, nil
}

// targetImages prepares the generated photos and runs vipsthumbnail on the
// same files (imageprep.CompareVipsthumbnail), images per CPU-second each.
func (b *bench) targetImages(ctx context.Context) (target, error) {
	t := target{what: fmt.Sprintf("image preparation, images per CPU-second (%d photos %dx%d, fit 1344 px, q85)", b.photos, b.w, b.h),
		goal: "≥ 1.0× vipsthumbnail"}
	if b.photos == 0 {
		t.ours, t.ref, t.ratio = "n/a (--photos 0)", "n/a", "n/a"
		return t, nil
	}
	dir, err := os.MkdirTemp("", "llamapipe-bench-photos-")
	if err != nil {
		return t, err
	}
	defer os.RemoveAll(dir)
	if _, err := b.generatePhotos(ctx, b.svc.Open, dir); err != nil {
		return t, err
	}
	var paths []string
	var photos [][]byte
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		paths, photos = append(paths, p), append(photos, data)
		return err
	})
	if err != nil {
		return t, err
	}
	bin, lookErr := exec.LookPath("vipsthumbnail") // "": ours only
	out, err := os.MkdirTemp("", "llamapipe-bench-vips-")
	if err != nil {
		return t, err
	}
	defer os.RemoveAll(out)
	c, err := imageprep.CompareVipsthumbnail(ctx, bin, photos, paths, out)
	if err != nil {
		return t, err
	}
	ours := float64(c.Images) / c.Ours.Seconds()
	t.ours = fmt.Sprintf("%.1f", ours)
	if lookErr != nil {
		t.ref, t.ratio = "vipsthumbnail not installed (Debian: libvips-tools)", "n/a"
		return t, nil
	}
	vips := float64(c.Images) / c.Vips.Seconds()
	t.ref = fmt.Sprintf("%.1f vipsthumbnail (peak RSS %s)", vips, humanBytes(c.VipsRSS))
	t.ratio = fmt.Sprintf("%.2f", ours/vips)
	return t, nil
}

// targetPages runs a generated long PDF through the pipeline with a small
// context window (the offline model, 8,192 tokens: the PDF is planned into
// chunks and mapped) and counts the pages the workers extracted.
func (b *bench) targetPages(ctx context.Context, base string) (target, error) {
	pages := max(b.pages, 12)
	t := target{what: fmt.Sprintf("long PDF (%d pages, map-reduce): pages extracted per page of input", pages), ref: "1", goal: "1"}
	src := base + "/input/pdf"
	st, err := b.svc.Open(ctx, src)
	if err != nil {
		return t, err
	}
	data := PDF(0, pages, uint64(b.seed), b.nonce)
	if err := st.Put(ctx, "contract.pdf", strings.NewReader(string(data)), int64(len(data)), "application/pdf"); err != nil {
		return t, err
	}
	r, err := b.batch(ctx, offline.New(offline.Options{ContextTokens: 8192}), nil, src, base+"/results/pdf")
	if err != nil {
		return t, err
	}
	if r.done != 1 {
		return t, fmt.Errorf("bench: targets: the long PDF was not summarized")
	}
	per := float64(r.pagesExtracted) / float64(pages)
	t.ours = fmt.Sprintf("%.2f (%d extractions; %d chunks)", per, r.pagesExtracted, r.chunks)
	t.ratio = fmt.Sprintf("%.2f", per)
	return t, nil
}

// fsKind names the file system a local folder is on (its parent, when the
// folder is not made yet), or says it is S3.
func fsKind(dir string) string {
	if strings.HasPrefix(dir, "s3://") {
		return "S3"
	}
	var st syscall.Statfs_t
	for d := dir; ; d = filepath.Dir(d) {
		if err := syscall.Statfs(d, &st); err == nil {
			break
		}
		if d == filepath.Dir(d) {
			return "a local folder"
		}
	}
	kinds := map[int64]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x6969: "NFS", 0x794c7630: "overlayfs", 0x2FC12FC1: "zfs"}
	if k, ok := kinds[int64(st.Type)]; ok {
		return "a folder on " + k
	}
	return fmt.Sprintf("a local folder (file system 0x%x)", st.Type)
}

func printTargets(w io.Writer, ts []target) {
	fmt.Fprintf(w, "| what | llamapipe | reference (same run) | ratio | target |\n|---|---:|---:|---:|---|\n")
	for _, t := range ts {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.what, t.ours, t.ref, t.ratio, t.goal)
	}
}
