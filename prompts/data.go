package prompts

import (
	"fmt"
	"regexp"
	"strconv"
)

// CaptionData is the data of the caption template.
type CaptionData struct {
	// Language is the answer's language, e.g. "en" or "German". Required.
	Language string
	// Product is optional catalogue context; nil when unknown.
	Product *Product
}

// Product is catalogue context for one image; empty fields are left out.
type Product struct {
	SKU, Name, Brand string
}

// SummaryData is the data of the summary template (whole document, one call).
type SummaryData struct {
	// Language is the answer's language. Required.
	Language string
	// Title is the document's file name; empty leaves it out.
	Title string
	// Pages is the page count; zero leaves it out.
	Pages int
}

// CorrespondenceData is the data of the correspondence template (one email
// message).
type CorrespondenceData struct {
	// Language is the answer's language. Required.
	Language string
	// Title is the message's file name; empty leaves it out.
	Title string
}

// ChunkData is the data of the summary_map template (one chunk).
type ChunkData struct {
	// Language is the answer's language. Required.
	Language string
	// Chunk is this chunk's 1-based index and Chunks the number of chunks.
	Chunk, Chunks int
	// FirstPage and LastPage are the chunk's page range; zero leaves it out.
	FirstPage, LastPage int
}

// ReduceData is the data of the summary_reduce template.
type ReduceData struct {
	// Language is the answer's language. Required.
	Language string
	// Parts is the number of partial results attached.
	Parts int
	// Title is the document's file name; empty leaves it out.
	Title string
	// Pages is the page count; zero leaves it out.
	Pages int
}

// PageMarkerFormat is the fmt format of the page marker that starts each
// page of document text: "[page 3]". Pages are 1-based.
const PageMarkerFormat = "[page %d]"

// PageMarkerPattern is a regular expression matching one page marker; its
// first group is the page number.
const PageMarkerPattern = `\[page (\d{1,6})\]`

// PageMarker returns the marker for page n, e.g. "[page 3]". Workers put it
// on its own line before the text of page n.
func PageMarker(n int) string { return fmt.Sprintf(PageMarkerFormat, n) }

// PageText is the text of one page, without its marker.
type PageText struct {
	// Page is the 1-based page number; 0 for text before the first marker.
	Page int
	Text string
}

var pageMarkerRE = regexp.MustCompile(PageMarkerPattern)

// SplitPages splits document text at its page markers. Text before the first
// marker (if not empty) gets Page 0. Markers themselves are dropped.
func SplitPages(text string) []PageText {
	locs := pageMarkerRE.FindAllStringSubmatchIndex(text, -1)
	var out []PageText
	prev, page := 0, 0
	for _, l := range locs {
		if seg := text[prev:l[0]]; page != 0 || seg != "" {
			out = append(out, PageText{Page: page, Text: seg})
		}
		n, _ := strconv.Atoi(text[l[2]:l[3]])
		page, prev = n, l[1]
	}
	if page != 0 || text[prev:] != "" {
		out = append(out, PageText{Page: page, Text: text[prev:]})
	}
	return out
}
