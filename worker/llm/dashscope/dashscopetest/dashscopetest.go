// Package dashscopetest is a fake of DashScope's native multimodal
// generation API for tests, faithful to
// shared/reference/providers/dashscope-llama-vision-multimodal-api.zh.txt
// where llamapipe depends on it: POST <base>/api/v1/services/aigc/
// multimodal-generation/generation with a bearer key, messages under
// "input", each user message carrying an image; an image given by URL is
// FETCHED by the service (an HTTP GET, as the real one downloads it) and
// must decode as an image; a failure answers 400 InvalidParameter quoting
// the URL, as the service's download errors do.
//
// Test code only: never linked into the binary.
package dashscopetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // decode fetched images
	_ "image/png"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Path is the endpoint below the base URL (as dashscope.Path).
const Path = "/api/v1/services/aigc/multimodal-generation/generation"

// Caption is the answer text: a caption JSON that follows
// prompts/schemas/caption.json.
const Caption = `{"alt_text":"A white mug on a table","caption":"A plain white ceramic mug.","title":"White mug",` +
	`"category":"mug","colors":["white"],"material":"ceramic","attributes":{},"tags":["mug"],"visible_text":"",` +
	`"quality":{"blurry":false,"background_not_white":false,"watermark":false,"multiple_products":false,"contains_person":false}}`

// Options configure a Server.
type Options struct {
	// APIKey is the key every request must carry. Required.
	APIKey string
	// MaxSide, when > 0, is the longest side an image may have (the
	// prepared size the worker sends); a larger one is refused with 400.
	MaxSide int
	// FetchDelay is waited before an image URL is fetched (a queued
	// request: a URL with a shorter lifetime has expired by then).
	FetchDelay time.Duration
	// Client fetches image URLs. Default: a client with a 30s timeout.
	Client *http.Client
}

// Image is one image the server received.
type Image struct {
	// ByURL is true when it came as a URL (and was fetched), false for a
	// data URI.
	ByURL bool
	// URL is the address without its query (never the signature).
	URL string
	// Width and Height are the decoded image's.
	Width, Height int
	// Bytes is the size of the encoded image.
	Bytes int
}

// Server is the fake. It is an http.Handler, safe for concurrent use.
type Server struct {
	o      Options
	mu     sync.Mutex
	images []Image
	calls  int
}

// New returns a Server.
func New(o Options) *Server {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Server{o: o}
}

// Images returns the images received so far, in order.
func (s *Server) Images() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Image(nil), s.images...)
}

// Calls is how many generation requests arrived.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type body struct {
	Model string `json:"model"`
	Input struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Image *string `json:"image"`
				Text  *string `json:"text"`
			} `json:"content"`
		} `json:"messages"`
	} `json:"input"`
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"code": code, "message": msg, "request_id": "fake-error"})
	_, _ = w.Write(b)
}

// ServeHTTP answers one generation request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != Path {
		fail(w, http.StatusNotFound, "NotFound", "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.o.APIKey {
		fail(w, http.StatusUnauthorized, "InvalidApiKey", "Invalid API-key provided.")
		return
	}
	var b body
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Model == "" {
		fail(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("request body: %v", err))
		return
	}
	var got []Image
	for _, m := range b.Input.Messages {
		for _, c := range m.Content {
			if c.Image == nil {
				continue
			}
			if m.Role != "user" {
				fail(w, http.StatusBadRequest, "InvalidParameter", "images go in user messages")
				return
			}
			img, err := s.image(r, *c.Image)
			if err != nil {
				// As the service does: the message quotes what it was given.
				fail(w, http.StatusBadRequest, "InvalidParameter", err.Error())
				return
			}
			got = append(got, img)
		}
	}
	if len(got) == 0 {
		fail(w, http.StatusBadRequest, "InvalidParameter", "The input messages must contain an image URL.")
		return
	}
	s.mu.Lock()
	s.images = append(s.images, got...)
	s.mu.Unlock()
	text, _ := json.Marshal(Caption)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":[{"text":%s}]}}]},`+
		`"usage":{"input_tokens":%d,"output_tokens":60},"request_id":"fake-ok"}`, text, 40+1601*len(got))
}

// image reads one image item: a data URI, or a URL it fetches.
func (s *Server) image(r *http.Request, ref string) (Image, error) {
	var data []byte
	img := Image{}
	switch {
	case strings.HasPrefix(ref, "data:"):
		_, b64, ok := strings.Cut(ref, ";base64,")
		var err error
		if data, err = base64.StdEncoding.DecodeString(b64); !ok || err != nil {
			return img, fmt.Errorf("The image data URI is not valid base64.")
		}
	case strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://"):
		img.ByURL = true
		img.URL, _, _ = strings.Cut(ref, "?")
		if s.o.FetchDelay > 0 {
			select {
			case <-time.After(s.o.FetchDelay):
			case <-r.Context().Done():
				return img, fmt.Errorf("Download the media resource timed out: %s", ref)
			}
		}
		res, err := s.o.Client.Get(ref)
		if err != nil {
			return img, fmt.Errorf("Download the media resource failed: %s: %v", ref, err)
		}
		defer res.Body.Close()
		data, err = io.ReadAll(io.LimitReader(res.Body, 10<<20+1))
		if err != nil || res.StatusCode != http.StatusOK {
			return img, fmt.Errorf("Download the media resource failed: %s returned HTTP %d", ref, res.StatusCode)
		}
	default:
		return img, fmt.Errorf("The provided URL does not appear to be valid: %.40s", ref)
	}
	if len(data) > 10<<20 {
		return img, fmt.Errorf("The image is larger than 10 MB.")
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return img, fmt.Errorf("The image format is illegal and cannot be opened.")
	}
	if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
		return img, fmt.Errorf("The image format is illegal and cannot be opened.")
	}
	if s.o.MaxSide > 0 && max(cfg.Width, cfg.Height) > s.o.MaxSide {
		return img, fmt.Errorf("image %dx%d is larger than the prepared %d pixels", cfg.Width, cfg.Height, s.o.MaxSide)
	}
	img.Width, img.Height, img.Bytes = cfg.Width, cfg.Height, len(data)
	return img, nil
}
