package extract

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// rtfSkip are destinations whose text is not the document's.
var rtfSkip = map[string]bool{
	"fonttbl": true, "colortbl": true, "stylesheet": true, "info": true, "pict": true, "object": true,
	"header": true, "footer": true, "headerl": true, "headerr": true, "footerl": true, "footerr": true,
	"listtable": true, "listoverridetable": true, "rsidtbl": true, "generator": true, "xmlnstbl": true,
	"themedata": true, "colorschememapping": true, "latentstyles": true, "datastore": true, "fldinst": true,
}

// RTF returns the text of a Rich Text Format document: paragraphs (\par)
// and line breaks as newlines, \tab as a tab, \'hh as a Windows-1252
// byte, \uN as a Unicode character (skipping its \ucN fallback bytes);
// font, colour and style tables, pictures, headers, footers and \*
// destinations are skipped. At most lim.MaxTextBytes of text.
func RTF(data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	s := string(data)
	if !strings.HasPrefix(strings.TrimLeft(s, " \r\n\t"), `{\rtf`) {
		return "", fmt.Errorf("%w: not an RTF document", ErrCorrupt)
	}
	type group struct {
		skip bool
		uc   int
	}
	stack := []group{{uc: 1}}
	var b strings.Builder
	dec := charmap.Windows1252.NewDecoder()
	skipBytes := 0 // fallback characters after \uN still to skip
	for i := 0; i < len(s); {
		if int64(b.Len()) > lim.MaxTextBytes {
			return "", fmt.Errorf("%w: RTF has more than %d bytes of text", ErrTooLarge, lim.MaxTextBytes)
		}
		cur := &stack[len(stack)-1]
		c := s[i]
		switch {
		case c == '{':
			if len(stack) > 1000 {
				return "", fmt.Errorf("%w: RTF groups nested over 1000 deep", ErrTooLarge)
			}
			stack = append(stack, *cur)
			i++
			if strings.HasPrefix(s[i:], `\*`) {
				stack[len(stack)-1].skip = true
			}
		case c == '}':
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			i++
		case c == '\\' && i+1 < len(s):
			i++
			switch n := s[i]; {
			case n == '\'' && i+2 < len(s):
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				i += 3
				if err == nil && !cur.skip {
					if skipBytes > 0 {
						skipBytes--
					} else if out, err := dec.Bytes([]byte{byte(v)}); err == nil {
						b.Write(out)
					}
				}
			case isLetter(n):
				j := i
				for j < len(s) && isLetter(s[j]) {
					j++
				}
				word := s[i:j]
				k := j
				if k < len(s) && (s[k] == '-' || isDigitByte(s[k])) {
					k++
					for k < len(s) && isDigitByte(s[k]) {
						k++
					}
				}
				arg, hasArg := 0, k > j
				if hasArg {
					arg, _ = strconv.Atoi(s[j:k])
				}
				if k < len(s) && s[k] == ' ' {
					k++
				}
				i = k
				switch {
				case rtfSkip[word]:
					cur.skip = true
				case cur.skip:
				case word == "par" || word == "line" || word == "sect" || word == "page" || word == "row":
					b.WriteByte('\n')
				case word == "tab" || word == "cell":
					b.WriteByte('\t')
				case word == "uc" && hasArg:
					cur.uc = arg
				case word == "u" && hasArg:
					if arg < 0 {
						arg += 65536
					}
					b.WriteRune(rune(arg))
					skipBytes = cur.uc
				}
			default: // a control symbol: \\ \{ \} \~ \- \_
				i++
				if cur.skip {
					continue
				}
				switch n {
				case '\\', '{', '}':
					b.WriteByte(n)
				case '~':
					b.WriteByte(' ')
				case '_':
					b.WriteByte('-')
				}
			}
		case c == '\r' || c == '\n':
			i++
		default:
			i++
			if cur.skip {
				continue
			}
			if skipBytes > 0 {
				skipBytes--
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isLetter(c byte) bool    { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }
