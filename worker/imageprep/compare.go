package imageprep

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// VipsComparison is Prepare beside vipsthumbnail on the same images: the
// CPU time (user + system) each took, and vipsthumbnail's peak RSS.
type VipsComparison struct {
	Images int
	// Ours is this process's CPU time while Prepare ran (run nothing else
	// meanwhile); Vips is the vipsthumbnail child's.
	Ours, Vips time.Duration
	VipsRSS    int64 // bytes
}

// CompareVipsthumbnail prepares every photo (the bytes of the file at the
// same index of paths) with Prepare's defaults (long side 1344, JPEG q85),
// then runs vipsthumbnail (bin) with the same size and quality on the
// files, writing into outDir (bin "": Prepare only). It is the measure of the image-preparation
// benchmark (BenchmarkPrepareVsVipsthumbnail) and of `llamapipe bench
// --measure targets`.
func CompareVipsthumbnail(ctx context.Context, bin string, photos [][]byte, paths []string, outDir string) (VipsComparison, error) {
	c := VipsComparison{Images: len(photos)}
	cpu0 := processCPU()
	for i, p := range photos {
		if _, err := Prepare(ctx, p, Options{}); err != nil {
			return c, fmt.Errorf("prepare %s: %w", paths[i], err)
		}
	}
	c.Ours = processCPU() - cpu0
	if bin == "" {
		return c, nil
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--size", "1344", "-o", filepath.Join(outDir, "%s.jpg[Q=85]")}, paths...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return c, fmt.Errorf("vipsthumbnail: %w: %s", err, msg)
	}
	c.Vips = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		c.VipsRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return c, nil
}

// processCPU is this process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
