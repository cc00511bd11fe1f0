package extract

import (
	"errors"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/jobs/mailparts"
)

// ErrMail marks a message that cannot be read or is over the MIME
// budgets (a bomb of nested parts). Permanent.
var ErrMail = errors.New("unreadable email")

// Mail is an email's text for a correspondence summary: a header block
// (from, to, cc, date, subject, and the attachments by name, each of
// which is an item of its own) and the text body (an HTML-only body as
// its text).
func Mail(data []byte) (string, error) {
	m, err := mailparts.Read(data, mailparts.Limits{})
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMail, err)
	}
	var b strings.Builder
	b.WriteString("Email message (correspondence)\n")
	for _, f := range [][2]string{{"From", m.From}, {"To", m.To}, {"Cc", m.Cc}, {"Date", m.Date}, {"Subject", m.Subject}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	var names []string
	for _, p := range m.Parts {
		if p.Parent == "" {
			names = append(names, p.Name)
		}
	}
	if len(names) > 0 {
		fmt.Fprintf(&b, "Attachments: %s\n", strings.Join(names, ", "))
	}
	b.WriteString("\n")
	body := m.Body
	if m.BodyHTML {
		if body, err = HTML([]byte(m.Body)); err != nil {
			return "", fmt.Errorf("%w: html body: %w", ErrMail, err)
		}
	}
	b.WriteString(strings.TrimSpace(body))
	b.WriteString("\n")
	return b.String(), nil
}
