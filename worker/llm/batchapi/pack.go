package batchapi

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// Limits bound one input file (and, for MinLines, one job).
type Limits struct {
	// MaxLines is the most lines (requests) in one file. Zero: no limit.
	MaxLines int
	// MaxBytes is the largest file, newlines included. Zero: no limit.
	MaxBytes int64
	// MaxLineBytes is the largest line (without its newline). Zero: only
	// MaxBytes applies.
	MaxLineBytes int64
	// MinLines is the fewest lines a job may have (Bedrock); Submit refuses
	// fewer with a *TooFewLinesError. Zero: no minimum.
	MinLines int
}

// OpenAI Batch API limits (platform.openai.com/docs/guides/batch): at most
// 50,000 requests and 200 MB per input file. No separate per-line limit is
// documented; DashScope's compatible-mode batch documents 6 MB per line and
// 500 MB per file, Together and Groq 50,000 lines and 100 MB per file.
const (
	OpenAIMaxLines     = 50_000
	OpenAIMaxBytes     = 200 << 20
	OpenAIMaxLineBytes = 6 << 20
)

// Bedrock batch inference quotas (Amazon Bedrock service quotas, defaults;
// adjustable per account and model): at least 100 records per job, at most
// 50,000 records per input file and per job, input files up to 1 GB. The
// per-record limit is the Converse request size; 6 MB is used here to keep
// records to what an online call could carry.
const (
	BedrockMinLines     = 100
	BedrockMaxLines     = 50_000
	BedrockMaxBytes     = 1 << 30
	BedrockMaxLineBytes = 6 << 20
)

// Groq's and Together's OpenAI-style batch APIs take files up to 100 MB
// (Groq's SDK documentation; Together's Batch API announcement, which also
// gives 50,000 requests per file).
const SmallMaxBytes = 100 << 20

// ProfileLimits returns the file limits of a profile's batch API:
// BedrockLimits for llm.BatchBedrock; for any other profile OpenAILimits,
// with SmallMaxBytes per file when the base URL is Groq's or Together's.
func ProfileLimits(p llm.Profile) Limits {
	if p.BatchAPI == llm.BatchBedrock || (p.BatchAPI == "" && p.Provider == llm.ProviderBedrock) {
		return BedrockLimits()
	}
	l := OpenAILimits()
	if host := baseHost(p.BaseURL); host == "api.groq.com" || host == "api.together.xyz" {
		l.MaxBytes = SmallMaxBytes
	}
	return l
}

// ProfileFilePurpose is the purpose an OpenAI-style batch input file is
// uploaded with: "batch-api" for Together (its batch documentation),
// "batch" (OpenAI's) for everyone else.
func ProfileFilePurpose(p llm.Profile) string {
	if baseHost(p.BaseURL) == "api.together.xyz" {
		return "batch-api"
	}
	return "batch"
}

func baseHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// OpenAILimits returns the OpenAI-style Batch API defaults.
func OpenAILimits() Limits {
	return Limits{MaxLines: OpenAIMaxLines, MaxBytes: OpenAIMaxBytes, MaxLineBytes: OpenAIMaxLineBytes}
}

// BedrockLimits returns the Bedrock batch inference defaults.
func BedrockLimits() Limits {
	return Limits{MaxLines: BedrockMaxLines, MaxBytes: BedrockMaxBytes, MaxLineBytes: BedrockMaxLineBytes, MinLines: BedrockMinLines}
}

// File is one cut input file: JSONL, one line per request.
type File struct {
	// Data is the file's content, each line ending in "\n".
	Data []byte
	// CustomIDs are the lines' custom ids, in order.
	CustomIDs []string
}

// Lines is the number of lines in the file.
func (f *File) Lines() int { return len(f.CustomIDs) }

// Packer appends encoded lines to a file and cuts it at the limits. It is
// not safe for concurrent use.
type Packer struct {
	enc    func(Line) ([]byte, error)
	limits Limits
	buf    bytes.Buffer
	ids    []string
	seen   map[string]bool
}

// NewPacker returns a Packer encoding lines with encode (a Client's Encode)
// and cutting files at limits.
func NewPacker(encode func(Line) ([]byte, error), limits Limits) *Packer {
	return &Packer{enc: encode, limits: limits, seen: map[string]bool{}}
}

// Add encodes l and appends it. When l does not fit in the current file,
// the current file is returned (cut) and l starts the next one. A line
// that fits no file is refused with a *LineTooLargeError, a repeated custom
// id with a *DuplicateIDError, an invalid request with the encoder's error;
// the packer is unchanged then.
func (p *Packer) Add(l Line) (*File, error) {
	if p.seen[l.CustomID] {
		return nil, &DuplicateIDError{CustomID: l.CustomID}
	}
	b, err := p.enc(l)
	if err != nil {
		return nil, fmt.Errorf("encode line %q: %w", l.CustomID, err)
	}
	size := int64(len(b))
	maxLine := p.limits.MaxLineBytes
	if p.limits.MaxBytes > 0 && (maxLine <= 0 || maxLine > p.limits.MaxBytes-1) {
		maxLine = p.limits.MaxBytes - 1 // room for the newline
	}
	if maxLine > 0 && size > maxLine {
		return nil, &LineTooLargeError{CustomID: l.CustomID, Size: size, Limit: maxLine}
	}
	var cut *File
	if len(p.ids) > 0 && !p.fits(size) {
		cut = p.Flush()
	}
	p.buf.Write(b)
	p.buf.WriteByte('\n')
	p.ids = append(p.ids, l.CustomID)
	p.seen[l.CustomID] = true
	return cut, nil
}

func (p *Packer) fits(size int64) bool {
	if p.limits.MaxLines > 0 && len(p.ids)+1 > p.limits.MaxLines {
		return false
	}
	if p.limits.MaxBytes > 0 && int64(p.buf.Len())+size+1 > p.limits.MaxBytes {
		return false
	}
	return true
}

// Pending is the number of lines in the current, uncut file.
func (p *Packer) Pending() int { return len(p.ids) }

// Flush cuts the current file and returns it, or nil when it is empty.
// Custom ids stay reserved: a later line may not reuse one (the caller's
// map from custom id back to its item spans files).
func (p *Packer) Flush() *File {
	if len(p.ids) == 0 {
		return nil
	}
	f := &File{Data: bytes.Clone(p.buf.Bytes()), CustomIDs: p.ids}
	p.buf.Reset()
	p.ids = nil
	return f
}
