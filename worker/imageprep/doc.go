// Package imageprep turns one catalog image (bytes in any common format) into
// a JPEG that a Llama 4 vision model accepts: decoded safely, EXIF
// orientation applied, transparency flattened onto white, fitted within
// Options.MaxSide pixels and encoded under Options.MaxBytes.
//
// AVIF and HEIC are decoded by gen2brain/avif and gen2brain/heic (libavif
// and libheif in WebAssembly, wazero) after heif.go has read their
// ISO base media header in Go: the size of every item (refused above
// MaxPixels before a decoder runs), irot/imir (applied here, as an EXIF
// orientation) and the HEIC alpha item (decoded on its own and joined).
//
// It owns: choosing a decoder for the format jobs/sniff (the project's one
// content sniffer) reports, header-first size limits (decompression bombs are
// refused from the header, before any pixel buffer is allocated), EXIF
// orientation parsing (JPEG APP1, PNG eXIf, WebP EXIF, TIFF IFD0), decoding,
// resizing (resize.go: fixed-point Lanczos-3 for opaque RGBA and gray
// pictures; github.com/disintegration/imaging for the rest) and the JPEG
// quality/size loop.
//
// JPEG decoding and encoding use libjpeg-turbo through cgo when cgo is enabled
// (Debian package libjpeg62-turbo-dev at build time, libjpeg62-turbo at run
// time); large JPEGs are then decoded at a reduced DCT scale (1/8..8/8), which
// is where most of the speed comes from. That backend pins glibc's mmap
// threshold (mallopt M_MMAP_THRESHOLD = 128 KiB, process-wide) so libjpeg's
// large buffers go back to the OS after each image (see jpeg_cgo.go).
// Build with the tag imageprep_purego
// (or CGO_ENABLED=0) to use the pure-Go image/jpeg path instead; both paths
// give the same results within JPEG rounding. JPEGBackend names the one
// compiled in.
//
// It must not know about storage, queues, tasks, model providers or prompts:
// callers hand it bytes and a byte cap (the model profile's max image bytes)
// and get a Result or an error wrapping ErrUnsupported, ErrTooLarge or
// ErrCorrupt (all permanent: retrying the same bytes cannot succeed). A
// cancelled context yields the context's error instead. Of jobs it uses only
// the file types (jobs.FileType) and jobs/sniff.
package imageprep
