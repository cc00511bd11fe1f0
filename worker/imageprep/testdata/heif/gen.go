//go:build ignore

// gen makes this folder's AVIF and HEIC test files from two pictures it
// draws itself (CC0-1.0: see LICENSE.md). It needs Debian's libavif-bin
// (avifenc 0.11) and libheif-examples (heif-enc 1.15):
//
//	cd worker/imageprep/testdata/heif && go run gen.go
package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
)

func main() {
	// photo: 128x96, opaque; a red block top left and a blue one bottom
	// right on a gradient, so a rotation shows. (gen2brain/heic v0.4.5
	// decodes HEIC narrower than 97 pixels wrongly: see heif.go.)
	p := image.NewNRGBA(image.Rect(0, 0, 128, 96))
	for y := range 96 {
		for x := range 128 {
			c := color.NRGBA{uint8(x), 160, 40, 255}
			if x < 40 && y < 32 {
				c = color.NRGBA{220, 20, 20, 255}
			}
			if x >= 88 && y >= 64 {
				c = color.NRGBA{20, 20, 220, 255}
			}
			p.Set(x, y, c)
		}
	}
	save("/tmp/heifgen-photo.png", p)
	// cutout: 112x112, a dark disc on a transparent background.
	a := image.NewNRGBA(image.Rect(0, 0, 112, 112))
	for y := range 112 {
		for x := range 112 {
			if dx, dy := x-56, y-56; dx*dx+dy*dy < 40*40 {
				a.Set(x, y, color.NRGBA{40, 40, 60, 255})
			}
		}
	}
	save("/tmp/heifgen-cutout.png", a)

	run("avifenc", "--min", "20", "--max", "30", "--irot", "1", "/tmp/heifgen-photo.png", "photo_irot90.avif")
	run("avifenc", "--min", "20", "--max", "30", "/tmp/heifgen-cutout.png", "cutout_alpha.avif")
	run("heif-enc", "-q", "60", "/tmp/heifgen-photo.png", "-o", "/tmp/heifgen-photo.heic")
	run("heif-enc", "-q", "60", "/tmp/heifgen-cutout.png", "-o", "cutout_alpha.heic")
	// heif-enc 1.15 writes no irot: add one (a quarter turn anticlockwise)
	// to the primary item.
	write("photo_irot90.heic", addIrot(read("/tmp/heifgen-photo.heic"), 1))
	// Header bombs: the same files declaring 100000x100000 pixels.
	write("bomb_100000x100000.avif", bomb(read("cutout_alpha.avif")))
	write("bomb_100000x100000.heic", bomb(read("cutout_alpha.heic")))
}

// bomb rewrites every ispe property to 100000x100000 (sizes unchanged).
func bomb(d []byte) []byte {
	d = bytes.Clone(d)
	for i := 0; ; {
		j := bytes.Index(d[i:], []byte("ispe"))
		if j < 0 {
			return d
		}
		i += j
		binary.BigEndian.PutUint32(d[i+8:], 100000)
		binary.BigEndian.PutUint32(d[i+12:], 100000)
		i += 4
	}
}

// addIrot appends an irot property to ipco, associates it with item 1 in
// ipma (version 0, one-byte indices), grows meta/iprp/ipco/ipma and moves
// iloc's offsets by the bytes added.
func addIrot(d []byte, angle byte) []byte {
	meta := find(d, 0, len(d), "meta")
	iprp := find(d, meta+12, end(d, meta), "iprp")
	ipco := find(d, iprp+8, end(d, iprp), "ipco")
	ipma := find(d, iprp+8, end(d, iprp), "ipma")
	iloc := find(d, meta+12, end(d, meta), "iloc")
	nprops := 0
	for p := ipco + 8; p < end(d, ipco); p = end(d, p) {
		nprops++
	}
	// ipma: item 1 is the first entry: id u16, count u8, indices.
	e := ipma + 12 + 4
	if binary.BigEndian.Uint16(d[ipma+16:]) != 1 || d[ipma+8] != 0 || d[ipma+11]&1 != 0 {
		panic("ipma layout not handled")
	}
	count := int(d[e+2])
	out := make([]byte, 0, len(d)+10)
	out = append(out, d[:end(d, ipco)]...)
	out = append(out, 0, 0, 0, 9, 'i', 'r', 'o', 't', angle)
	out = append(out, d[end(d, ipco):e+2]...)
	out = append(out, byte(count+1))
	out = append(out, d[e+3:e+3+count]...)
	out = append(out, 0x80|byte(nprops+1))
	out = append(out, d[e+3+count:]...)
	grow := func(at, by int) { binary.BigEndian.PutUint32(out[at:], binary.BigEndian.Uint32(out[at:])+uint32(by)) }
	grow(meta, 10)
	grow(iprp, 10)
	grow(ipco, 9)
	grow(ipma+9, 1) // ipma now sits 9 bytes later
	// iloc (before iprp, so not moved): version 0, offsets of 4 bytes;
	// with a base offset, only it moves.
	osize, lsize, bsize := int(out[iloc+12]>>4), int(out[iloc+12]&0xF), int(out[iloc+13]>>4)
	if out[iloc+8] != 0 || osize != 4 || (bsize != 0 && bsize != 4) {
		panic("iloc layout not handled")
	}
	n := int(binary.BigEndian.Uint16(out[iloc+14:]))
	p := iloc + 16
	for range n {
		p += 4 // item ID, data reference index
		if bsize == 4 {
			grow(p, 10)
			p += 4
		}
		extents := int(binary.BigEndian.Uint16(out[p:]))
		p += 2
		for range extents {
			if bsize == 0 {
				grow(p, 10)
			}
			p += 4 + lsize
		}
	}
	return out
}

func find(d []byte, from, to int, typ string) int {
	for p := from; p+8 <= to; p = end(d, p) {
		if string(d[p+4:p+8]) == typ {
			return p
		}
	}
	panic("no " + typ)
}

func end(d []byte, p int) int { return p + int(binary.BigEndian.Uint32(d[p:])) }

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		panic(err)
	}
}

func save(name string, m image.Image) {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		panic(err)
	}
	write(name, b.Bytes())
}

func read(name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

func write(name string, b []byte) {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		panic(err)
	}
}
