//go:build cgo && !imageprep_purego

package imageprep

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <malloc.h>
#include <jpeglib.h>
#include <jerror.h>

#ifndef JCS_EXTENSIONS
#error "imageprep needs libjpeg-turbo (JCS_EXT_RGBA); install libjpeg62-turbo-dev or build with -tags imageprep_purego"
#endif

// A progressive JPEG may hold any number of scans; each costs a pass over
// the coefficient buffer, so a small file with thousands of scans is a CPU
// bomb. libjpeg-turbo's documentation recommends capping them.
#define LP_MAX_SCANS 500

enum { LP_OK = 0, LP_ERR = 1, LP_TOO_LARGE = 2 };

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
	char warn[JMSG_LENGTH_MAX];
	int warnings;
	int hit_marker;
	int premature_eof;
} lp_err;

// error_exit must not return (libjpeg's default calls exit()): jump back to
// the setjmp in the entry function, which frees everything.
static void lp_error_exit(j_common_ptr cinfo) {
	lp_err *e = (lp_err *)cinfo->err;
	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jb, 1);
}

static void lp_emit_message(j_common_ptr cinfo, int level) {
	lp_err *e = (lp_err *)cinfo->err;
	if (level >= 0) {
		return; // trace messages
	}
	if (e->warnings == 0) {
		(*cinfo->err->format_message)(cinfo, e->warn);
	}
	e->warnings++;
	if (cinfo->err->msg_code == JWRN_HIT_MARKER) {
		e->hit_marker = 1; // entropy decoder needed bits that were not there
	}
	if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
		e->premature_eof = 1; // data ended before EOI
	}
}

static void lp_output_message(j_common_ptr cinfo) { (void)cinfo; }

typedef struct {
	struct jpeg_progress_mgr pub;
	lp_err *err;
} lp_progress;

static void lp_progress_monitor(j_common_ptr cinfo) {
	lp_progress *p = (lp_progress *)cinfo->progress;
	if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > LP_MAX_SCANS) {
		snprintf(p->err->msg, sizeof p->err->msg, "more than %d progressive scans", LP_MAX_SCANS);
		longjmp(p->err->jb, 1);
	}
}

static void lp_init_err(lp_err *e) {
	memset(e, 0, sizeof *e);
	jpeg_std_error(&e->pub);
	e->pub.error_exit = lp_error_exit;
	e->pub.emit_message = lp_emit_message;
	e->pub.output_message = lp_output_message;
}

// lp_pin_mmap_threshold keeps glibc's mmap threshold at its 128 KiB default.
// libjpeg's big buffers (a progressive JPEG keeps whole-image coefficient
// arrays, tens of MB) are then always mmapped and returned to the OS on free.
// Otherwise glibc raises the threshold after the first such free (up to
// 32 MiB) and keeps later buffers in per-thread arenas, so a worker's RSS
// ratchets up by multiples of the largest image (measured: peak RSS over the
// photo set 157-226 MB without, 119 MB with). Setting it explicitly also
// turns off that dynamic adjustment. Idempotent and cheap; it affects every
// malloc user in the process, which in this worker is libjpeg.
static void lp_pin_mmap_threshold(void) {
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

typedef struct {
	int src_width, src_height;
	int warnings, hit_marker, premature_eof;
	char msg[JMSG_LENGTH_MAX];
	char warn[JMSG_LENGTH_MAX];
} lp_decode_result;

// lp_decode decodes buf at DCT scale num/8 into pix, which the caller sized
// for exactly want_w x want_h x comps bytes: RGBA (comps 4: YCbCr, RGB and
// CMYK/YCCK sources) or gray (comps 1). The header's size is checked against
// max_pixels before libjpeg allocates anything for the image.
static int lp_decode(const unsigned char *buf, unsigned long len, int num, int want_w, int want_h,
                     int comps, unsigned char *pix, long long max_pixels, lp_decode_result *res) {
	struct jpeg_decompress_struct cinfo;
	lp_err err;
	lp_progress prog;
	int cmyk = 0;

	lp_pin_mmap_threshold();
	memset(&cinfo, 0, sizeof cinfo);
	lp_init_err(&err);
	cinfo.err = &err.pub;
	if (setjmp(err.jb)) {
		memcpy(res->msg, err.msg, sizeof res->msg);
		memcpy(res->warn, err.warn, sizeof res->warn);
		res->warnings = err.warnings;
		jpeg_destroy_decompress(&cinfo);
		return LP_ERR;
	}
	jpeg_create_decompress(&cinfo);
	prog.pub.progress_monitor = lp_progress_monitor;
	prog.err = &err;
	cinfo.progress = &prog.pub;
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	res->src_width = (int)cinfo.image_width;
	res->src_height = (int)cinfo.image_height;
	if (cinfo.image_width == 0 || cinfo.image_height == 0 ||
	    (long long)cinfo.image_width * (long long)cinfo.image_height > max_pixels) {
		jpeg_destroy_decompress(&cinfo);
		return LP_TOO_LARGE;
	}
	switch (cinfo.jpeg_color_space) {
	case JCS_GRAYSCALE:
		cinfo.out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		cinfo.out_color_space = JCS_CMYK;
		cmyk = 1;
		break;
	default:
		cinfo.out_color_space = JCS_EXT_RGBA;
	}
	cinfo.scale_num = (unsigned int)num;
	cinfo.scale_denom = 8;
	jpeg_calc_output_dimensions(&cinfo);
	if ((int)cinfo.output_width != want_w || (int)cinfo.output_height != want_h ||
	    cinfo.output_components != comps) {
		snprintf(err.msg, sizeof err.msg, "decoder output %ux%ux%d differs from the header's %dx%dx%d",
		         cinfo.output_width, cinfo.output_height, cinfo.output_components, want_w, want_h, comps);
		longjmp(err.jb, 1);
	}
	jpeg_start_decompress(&cinfo);
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = pix + (size_t)cinfo.output_scanline * (size_t)want_w * (size_t)comps;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	if (cmyk) {
		// Adobe (APP14) CMYK JPEGs store inverted values (255 = no ink);
		// others store plain ink amounts. Naive conversion, as image/jpeg
		// and browsers do without an ICC profile.
		int inverted = cinfo.saw_Adobe_marker;
		size_t i, n = (size_t)want_w * (size_t)want_h * 4;
		for (i = 0; i < n; i += 4) {
			unsigned c = pix[i], m = pix[i + 1], y = pix[i + 2], k = pix[i + 3];
			if (!inverted) {
				c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k;
			}
			pix[i] = (unsigned char)((c * k + 127) / 255);
			pix[i + 1] = (unsigned char)((m * k + 127) / 255);
			pix[i + 2] = (unsigned char)((y * k + 127) / 255);
			pix[i + 3] = 255;
		}
	}
	jpeg_finish_decompress(&cinfo);
	res->warnings = err.warnings;
	res->hit_marker = err.hit_marker;
	res->premature_eof = err.premature_eof;
	memcpy(res->warn, err.warn, sizeof res->warn);
	jpeg_destroy_decompress(&cinfo);
	return LP_OK;
}

// lp_encode compresses RGBA (comps 4, alpha ignored) or gray (comps 1)
// pixels; *out is malloc'd by libjpeg and freed by the caller.
static int lp_encode(unsigned char *pix, int w, int h, int stride, int comps, int quality,
                     unsigned char **out, unsigned long *outlen, char *msg) {
	struct jpeg_compress_struct cinfo;
	lp_err err;

	memset(&cinfo, 0, sizeof cinfo);
	lp_init_err(&err);
	cinfo.err = &err.pub;
	*out = NULL;
	*outlen = 0;
	if (setjmp(err.jb)) {
		memcpy(msg, err.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_compress(&cinfo);
		free(*out);
		*out = NULL;
		return LP_ERR;
	}
	jpeg_create_compress(&cinfo);
	jpeg_mem_dest(&cinfo, out, outlen);
	cinfo.image_width = (JDIMENSION)w;
	cinfo.image_height = (JDIMENSION)h;
	cinfo.input_components = comps;
	cinfo.in_color_space = comps == 4 ? JCS_EXT_RGBA : JCS_GRAYSCALE;
	jpeg_set_defaults(&cinfo);
	jpeg_set_quality(&cinfo, quality, TRUE);
	jpeg_start_compress(&cinfo, TRUE);
	while (cinfo.next_scanline < cinfo.image_height) {
		JSAMPROW row = pix + (size_t)cinfo.next_scanline * (size_t)stride;
		jpeg_write_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_compress(&cinfo);
	jpeg_destroy_compress(&cinfo);
	return LP_OK;
}
*/
import "C"

import (
	"fmt"
	"image"
	"image/color"
	"strings"
	"unsafe"
)

// JPEGBackend names the JPEG codec compiled in: "libjpeg-turbo" (cgo) or
// "image/jpeg" (pure Go, build tag imageprep_purego or CGO_ENABLED=0).
const JPEGBackend = "libjpeg-turbo"

// decodeJPEG decodes data at the smallest libjpeg DCT scale n/8 that still
// gives at least minW x minH pixels, straight into Go memory sized from the
// header (cfg, from image/jpeg's DecodeConfig). A JPEG whose data simply
// lacks the final EOI marker decodes; one whose scan data ends early is
// ErrCorrupt.
func decodeJPEG(data []byte, cfg image.Config, minW, minH int, maxPixels int64) (image.Image, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty JPEG", ErrCorrupt)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("%w: JPEG header says %dx%d, over the %d-pixel limit",
			ErrTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	// libjpeg's output size at scale n/8 is ceil(size*n/8) (jdmaster.c).
	num, w, h := 8, cfg.Width, cfg.Height
	for n := 1; n <= 8; n++ {
		sw, sh := (cfg.Width*n+7)/8, (cfg.Height*n+7)/8
		if sw >= minW && sh >= minH {
			num, w, h = n, sw, sh
			break
		}
	}
	comps := 4
	if cfg.ColorModel == color.GrayModel {
		comps = 1
	}
	pix := make([]byte, w*h*comps)
	var res C.lp_decode_result
	rc := C.lp_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(num),
		C.int(w), C.int(h), C.int(comps), (*C.uchar)(unsafe.Pointer(&pix[0])), C.longlong(maxPixels), &res)
	switch rc {
	case C.LP_TOO_LARGE:
		return nil, fmt.Errorf("%w: JPEG header says %dx%d, over the %d-pixel limit",
			ErrTooLarge, int(res.src_width), int(res.src_height), maxPixels)
	case C.LP_ERR:
		msg := C.GoString(&res.msg[0])
		if strings.Contains(msg, "Unsupported") || strings.Contains(msg, "not supported") {
			return nil, fmt.Errorf("%w: JPEG: libjpeg: %s", ErrUnsupported, msg)
		}
		return nil, fmt.Errorf("%w: JPEG: libjpeg: %s", ErrCorrupt, msg)
	}
	if res.hit_marker != 0 && res.premature_eof != 0 {
		return nil, fmt.Errorf("%w: JPEG is truncated: image data ends before the last row (libjpeg: %s)",
			ErrCorrupt, C.GoString(&res.warn[0]))
	}
	if comps == 1 {
		return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	}
	return &image.RGBA{Pix: pix, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}, nil
}

// encodeJPEG encodes an opaque NRGBA image (alpha is ignored) at quality q.
func encodeJPEG(img *image.NRGBA, q int) ([]byte, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("encode JPEG: empty image")
	}
	var out *C.uchar
	var outLen C.ulong
	var msg [C.JMSG_LENGTH_MAX]C.char
	start := img.PixOffset(b.Min.X, b.Min.Y)
	rc := C.lp_encode((*C.uchar)(unsafe.Pointer(&img.Pix[start])), C.int(b.Dx()), C.int(b.Dy()),
		C.int(img.Stride), 4, C.int(q), &out, &outLen, &msg[0])
	if rc != C.LP_OK {
		return nil, fmt.Errorf("encode JPEG: libjpeg: %s", C.GoString(&msg[0]))
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(outLen)), nil
}
