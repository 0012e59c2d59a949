package wsgiinput

import (
	"net/http"
	"net/textproto"
)

// tokenChars marks the bytes allowed in a field name (RFC 9110 token).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsToken reports whether b is a non-empty RFC 9110 token.
func IsToken[S ~string | ~[]byte](b S) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !tokenChars[b[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether b may appear in a field value: no control
// characters other than horizontal tab, no DEL.
func ValidFieldValue[S ~string | ~[]byte](b S) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// SplitField splits one header or trailer field line (without its line
// ending) into name and value, checking it the way net/http does: the name
// is a token directly followed by a colon (no space before the colon), the
// value has no control characters, and a line starting with whitespace (an
// obs-fold continuation) is rejected. The value is trimmed of optional
// whitespace. Name and value alias line.
func SplitField[S ~string | ~[]byte](line S) (name, value S, err error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return name, value, framingError("obsolete line folding in field")
	}
	i := 0
	for i < len(line) && line[i] != ':' {
		i++
	}
	if i == len(line) {
		return name, value, framingError("field without a colon")
	}
	name, value = line[:i], line[i+1:]
	if !IsToken(name) {
		if len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
			return name[:0], value[:0], framingError("whitespace before the colon in a field")
		}
		return name[:0], value[:0], framingError("invalid field name")
	}
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	if !ValidFieldValue(value) {
		return name[:0], value[:0], framingError("control character in a field value")
	}
	return name, value, nil
}

// AddField adds a field to h under its canonical name.
func AddField(h http.Header, name, value []byte) {
	key := textproto.CanonicalMIMEHeaderKey(string(name))
	h[key] = append(h[key], string(value))
}
