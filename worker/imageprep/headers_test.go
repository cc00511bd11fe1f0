package imageprep

import "encoding/binary"

// Synthetic image headers that declare a size but carry no pixel data, for
// the decompression-bomb tests.

func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, 0, 0, 0) // no global colour table
	// One image descriptor covering the screen, then data that never comes.
	b = append(b, 0x2C, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0x80, 0, 0, 0, 0xFF, 0xFF, 0xFF, 8, 2, 0x4C, 0x01, 0, 0x3B)
}

func bmpHeader(w, h int32) []byte {
	b := []byte("BM")
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 54)
	b = binary.LittleEndian.AppendUint32(b, 40)
	b = binary.LittleEndian.AppendUint32(b, uint32(w))
	b = binary.LittleEndian.AppendUint32(b, uint32(h))
	b = binary.LittleEndian.AppendUint16(b, 1)  // planes
	b = binary.LittleEndian.AppendUint16(b, 24) // bits per pixel
	for range 6 {
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

func tiffHeader(w, h uint32) []byte {
	type entry struct {
		tag, typ uint16
		val      uint32
	}
	entries := []entry{
		{256, 4, w},  // ImageWidth
		{257, 4, h},  // ImageLength
		{258, 3, 8},  // BitsPerSample
		{259, 3, 1},  // Compression: none
		{262, 3, 1},  // Photometric: BlackIsZero
		{273, 4, 8},  // StripOffsets
		{277, 3, 1},  // SamplesPerPixel
		{278, 4, h},  // RowsPerStrip
		{279, 4, 16}, // StripByteCounts
	}
	b := []byte("II*\x00")
	b = binary.LittleEndian.AppendUint32(b, 8)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.typ)
		b = binary.LittleEndian.AppendUint32(b, 1)
		if e.typ == 3 {
			b = binary.LittleEndian.AppendUint16(b, uint16(e.val))
			b = binary.LittleEndian.AppendUint16(b, 0)
		} else {
			b = binary.LittleEndian.AppendUint32(b, e.val)
		}
	}
	return binary.LittleEndian.AppendUint32(b, 0) // no next IFD
}

func riffWebP(chunks ...[]byte) []byte {
	var body []byte
	body = append(body, "WEBP"...)
	for _, c := range chunks {
		body = append(body, c...)
	}
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func webpChunk(id string, data []byte) []byte {
	b := []byte(id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func webpVP8XHeader(w, h uint32) []byte {
	d := []byte{0, 0, 0, 0}
	d = append(d, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	d = append(d, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return riffWebP(webpChunk("VP8X", d))
}

func webpVP8LHeader(w, h uint32) []byte {
	bits := (w - 1) | (h-1)<<14
	d := []byte{0x2F}
	d = binary.LittleEndian.AppendUint32(d, bits)
	return riffWebP(webpChunk("VP8L", d))
}

func webpVP8Header(w, h uint16) []byte {
	d := []byte{0x10, 0, 0, 0x9D, 0x01, 0x2A, byte(w), byte(w>>8) & 0x3F, byte(h), byte(h>>8) & 0x3F}
	return riffWebP(webpChunk("VP8 ", d))
}
