package server

import (
	"net/url"
	"reflect"
	"testing"
)

// parseOriginForm must give exactly what url.ParseRequestURI gives, for
// every target it takes, and must take the common ones (or it saves
// nothing).
func TestParseOriginFormMatchesURLPackage(t *testing.T) {
	for _, target := range []string{"/", "/plaintext", "/a/b/c.json", "/p?q=1&r=2", "/p?", "/p??", "/p?a?", "/p?a b",
		"//host/p", "///p", "/a:b@c", "/$&+,;=~-_.", "/~user?x=%zz"} {
		var u url.URL
		if !parseOriginForm(target, &u) {
			t.Errorf("%q: not taken by the fast path", target)
			continue
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		if !reflect.DeepEqual(&u, want) {
			t.Errorf("%q: got %#v, want %#v", target, u, *want)
		}
	}
	for _, target := range []string{"", "*", "http://a/b", "a/b", "/%41", "/a b", "/a\"b", "/\xc3\xa9", "/a#b", "/a?\x01", "/a?\x7f"} {
		var u url.URL
		if parseOriginForm(target, &u) {
			t.Errorf("%q: taken by the fast path, but the url package escapes or refuses it", target)
		}
	}
	// Every path of two bytes, with and without a query.
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			for _, target := range []string{"/" + string([]byte{byte(a), byte(b)}), "/x?" + string([]byte{byte(a), byte(b)})} {
				var u url.URL
				if !parseOriginForm(target, &u) {
					continue
				}
				want, err := url.ParseRequestURI(target)
				if err != nil {
					t.Fatalf("%q: taken by the fast path, refused by the url package: %v", target, err)
				}
				if !reflect.DeepEqual(&u, want) {
					t.Fatalf("%q: got %#v, want %#v", target, u, *want)
				}
			}
		}
	}
}
