package dnsasync

import (
	"errors"
	"strings"
)

// Names inside the resolver are kept in one form: lower case, without the
// trailing dot ("example.com"), the root being "". That form is the cache
// key; the question sent is the same name with the dot added.

var (
	errEmptyName   = errors.New("empty name")
	errNameTooLong = errors.New("name longer than 253 bytes")
	errBadLabel    = errors.New("empty or over-long label")
	errBadChar     = errors.New("character not allowed in a host name")
)

// Byte classes of host names: one table lookup per byte checks a name,
// finds upper case and tells an IP literal from a name.
const (
	classLower  uint8 = 1 << iota // a-z
	classUpper                    // A-Z
	classDigit                    // 0-9
	classSymbol                   // '-' and '_'
	classDot                      // '.'
	classColon                    // ':' (IPv6 literals only)
)

var byteClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = classLower
		t[c-'a'+'A'] = classUpper
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = classDigit
	}
	t['-'], t['_'], t['.'], t[':'] = classSymbol, classSymbol, classDot, classColon
	return t
}()

// checkName reports whether name (in resolver form, no trailing dot) is a
// valid domain name to look up: labels of 1 to 63 bytes of letters, digits,
// '-' and '_', at most 253 bytes in all.
func checkName(name string) error {
	_, err := scanName(name)
	return err
}

// scanName is checkName, also returning the classes of the bytes of a
// valid name.
func scanName(name string) (uint8, error) {
	switch {
	case name == "":
		return 0, errEmptyName
	case len(name) > 253:
		return 0, errNameTooLong
	}
	var seen uint8
	label := 0
	for i := 0; i < len(name); i++ {
		c := byteClass[name[i]]
		switch c {
		case classDot:
			if label == 0 {
				return 0, errBadLabel
			}
			label = 0
			continue
		case 0, classColon:
			return 0, errBadChar
		}
		seen |= c
		label++
		if label > 63 {
			return 0, errBadLabel
		}
	}
	if label == 0 {
		return 0, errBadLabel
	}
	return seen, nil
}

// normalize turns a name as a caller wrote it into resolver form and
// reports whether it was rooted (ended in a dot, so the search list does
// not apply). It allocates only when the name has upper-case letters.
func normalize(host string) (name string, rooted bool, err error) {
	name = host
	if strings.HasSuffix(name, ".") {
		name, rooted = name[:len(name)-1], true
	}
	seen, err := scanName(name)
	if err != nil {
		return "", false, err
	}
	if seen&classUpper != 0 {
		name = lowerASCII(name)
	}
	return name, rooted, nil
}

// lowerASCII lowers A-Z only: DNS names compare case-insensitively in ASCII
// and nothing else (RFC 4343).
func lowerASCII(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// equalFoldASCII compares names case-insensitively in ASCII only; Unicode
// folding would equate bytes a DNS server does not.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// fqdn returns name (resolver form) as a question name.
func fqdn(name string) string { return name + "." }

// fromWire turns a name from a message ("Host.Example.", any case) into
// resolver form.
func fromWire(name string) string {
	return lowerASCII(strings.TrimSuffix(name, "."))
}

// asIsFirst reports whether name is tried as given before the search list.
func (s *settings) asIsFirst(name string, rooted bool) bool {
	return rooted || len(s.search) == 0 || strings.Count(name, ".") >= s.ndots
}

// candidates returns the names to try for name, in order: the name itself
// first when it is rooted or has at least ndots dots, otherwise after each
// search domain appended to it.
func (s *settings) candidates(name string, rooted bool) []string {
	if rooted || len(s.search) == 0 {
		return []string{name}
	}
	out := make([]string, 0, len(s.search)+1)
	first := s.asIsFirst(name, rooted)
	if first {
		out = append(out, name)
	}
	for _, d := range s.search {
		if c := name + "." + d; len(c) <= 253 {
			out = append(out, c)
		}
	}
	if !first {
		out = append(out, name)
	}
	return out
}

// isLocalhost reports whether name is "localhost" or under it: RFC 6761
// section 6.3 reserves these names for the loopback addresses, and they are
// never sent to a DNS server.
func isLocalhost(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}
