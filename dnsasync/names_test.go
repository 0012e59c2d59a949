package dnsasync

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	for _, c := range []struct {
		host   string
		name   string
		rooted bool
		ok     bool
	}{
		{"host.example.test", "host.example.test", false, true},
		{"Host.EXAMPLE.test.", "host.example.test", true, true},
		{"_srv._tcp.x-y.test", "_srv._tcp.x-y.test", false, true},
		{"1.2.3.4.", "1.2.3.4", true, true},
		{label63 + ".test", label63 + ".test", false, true},
		{label63 + "a.test", "", false, false},
		{"a:b.test", "", false, false},
		{"a..b", "", false, false},
		{".a", "", false, false},
		{"a.b..", "", false, false},
		{"", "", false, false},
		{"é.test", "", false, false},
		{strings.Repeat("abcdefghi.", 25) + "abcd", "", false, false}, // 254 bytes
	} {
		name, rooted, err := normalize(c.host)
		if (err == nil) != c.ok || name != c.name || rooted != c.rooted {
			t.Errorf("normalize(%q) = %q, %v, %v; want %q, %v, ok=%v", c.host, name, rooted, err, c.name, c.rooted, c.ok)
		}
	}
}

func TestParseIP(t *testing.T) {
	for _, c := range []struct {
		host string
		ok   bool
	}{
		{"192.0.2.1", true},
		{"::1", true},
		{"fe80::1%lo", true},
		{"::ffff:192.0.2.1", true},
		{"192.0.2.1.", false},
		{"123", false},
		{"host.example.test", false},
		{"1.2.3.4x", false},
		{"", false},
	} {
		if _, ok := parseIP(c.host); ok != c.ok {
			t.Errorf("parseIP(%q) ok = %v, want %v", c.host, ok, c.ok)
		}
	}
}
