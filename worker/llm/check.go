package llm

import (
	"fmt"
	"slices"
	"strings"
)

// HasImages reports whether the request carries at least one image.
func (r Request) HasImages() bool {
	for _, p := range r.Parts {
		if p.Image != nil {
			return true
		}
	}
	return false
}

// Images is how many images the request carries.
func (r Request) Images() int {
	n := 0
	for _, p := range r.Parts {
		if p.Image != nil {
			n++
		}
	}
	return n
}

// CheckRequestAllowed refuses, with a Permanent *Error, a request the model
// cannot take at all: one without images for a model whose TextOnly is false
// (DashScope's Llama 3.2 vision models reject text-only input). Call it once
// per batch, before enqueueing, to refuse a batch that would only fail.
func CheckRequestAllowed(p Profile, hasImages bool) error {
	if !hasImages && !p.TextOnly {
		return &Error{
			Provider: p.Provider,
			Kind:     Permanent,
			Code:     "text_only_unsupported",
			Message:  fmt.Sprintf("model %s does not accept requests without an image", p.Model),
		}
	}
	return nil
}

// NoDocuments is why a model cannot summarize documents (it takes no
// request without an image), or "" when it can.
func NoDocuments(p Profile) string {
	if err := CheckRequestAllowed(p, false); err != nil {
		return err.Error()
	}
	return ""
}

// ValidateRequest checks a request against the profile's limits before it is
// sent: CheckRequestAllowed, the number of images (Permanent), each image's
// declared type (Permanent) and its bytes and pixels (TooLarge). Zero limits
// are not checked.
func ValidateRequest(p Profile, req Request) error {
	if err := CheckRequestAllowed(p, req.HasImages()); err != nil {
		return err
	}
	if n := OutputTokens(p, req); n > 0 && n < p.MinOutputTokens {
		return &Error{Provider: p.Provider, Kind: Permanent, Code: "output_tokens",
			Message: fmt.Sprintf("answer cap %d is below %s's minimum of %d tokens", n, p.Model, p.MinOutputTokens)}
	}
	n := 0
	for _, part := range req.Parts {
		img := part.Image
		if img == nil {
			continue
		}
		n++
		if len(img.Data) == 0 {
			return &Error{Provider: p.Provider, Kind: Permanent, Code: "empty_image", Message: fmt.Sprintf("image %d has no data", n)}
		}
		if len(p.ImageFormats) > 0 && !slices.Contains(p.ImageFormats, strings.ToLower(img.MIME)) {
			return &Error{Provider: p.Provider, Kind: Permanent, Code: "image_format",
				Message: fmt.Sprintf("image %d: type %q not accepted by %s (accepted: %s)", n, img.MIME, p.Model, strings.Join(p.ImageFormats, ", "))}
		}
		if p.MaxImageBytes > 0 && len(img.Data) > p.MaxImageBytes {
			return &Error{Provider: p.Provider, Kind: TooLarge, Code: "image_bytes",
				Message: fmt.Sprintf("image %d is %d bytes, limit %d", n, len(img.Data), p.MaxImageBytes)}
		}
		if p.MaxImagePixels > 0 && img.Width*img.Height > p.MaxImagePixels {
			return &Error{Provider: p.Provider, Kind: TooLarge, Code: "image_pixels",
				Message: fmt.Sprintf("image %d is %dx%d pixels, limit %d", n, img.Width, img.Height, p.MaxImagePixels)}
		}
	}
	if p.MaxImages > 0 && n > p.MaxImages {
		return &Error{Provider: p.Provider, Kind: Permanent, Code: "image_count",
			Message: fmt.Sprintf("%d images, %s takes at most %d", n, p.Model, p.MaxImages)}
	}
	return nil
}

// OutputTokens is the answer cap to send: the request's, else the profile's,
// never above the profile's MaxOutputTokens (when set).
func OutputTokens(p Profile, req Request) int {
	n := req.MaxOutputTokens
	if n <= 0 || (p.MaxOutputTokens > 0 && n > p.MaxOutputTokens) {
		n = p.MaxOutputTokens
	}
	return n
}
