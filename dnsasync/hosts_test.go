package dnsasync

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/yieldio/yieldio/internal/dnstest"
)

const hostsText = `# comment
127.0.0.1   localhost
::1         localhost ip6-localhost
192.0.2.7   files.example.test files   # an alias
2001:db8::7 files.example.test
192.0.2.8   Mixed.Case.Test.
not-an-ip   ignored.test
192.0.2.9
`

func writeHosts(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostsFile(t *testing.T) {
	path := writeHosts(t, hostsText)
	srv, r, _ := faultResolver(t, func(c *Config) { c.HostsFile = path })
	ctx := context.Background()
	got, err := await(t, r.LookupHost(ctx, "files.example.test"))
	wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")})
	got, err = await(t, r.LookupNetIP(ctx, "ip4", "FILES"))
	wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr("192.0.2.7")})
	got, err = await(t, r.LookupHost(ctx, "mixed.case.test"))
	wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr("192.0.2.8")})
	cname, err := await(t, r.LookupCNAME(ctx, "files"))
	if err != nil || cname != "files.example.test." {
		t.Errorf("LookupCNAME(alias) = %q, %v", cname, err)
	}
	names, err := await(t, r.LookupAddr(ctx, "192.0.2.7"))
	if err != nil || !slices.Equal(names, []string{"files.example.test.", "files."}) {
		t.Errorf("LookupAddr = %q, %v", names, err)
	}
	names, err = await(t, r.LookupAddr(ctx, "::1"))
	if err != nil || !slices.Equal(names, []string{"localhost.", "ip6-localhost."}) {
		t.Errorf("LookupAddr(::1) = %q, %v", names, err)
	}
	if n, _ := srv.Count(); n != 0 {
		t.Errorf("%d queries for names in the hosts file", n)
	}
	// A name whose family the file lacks goes to DNS.
	if _, err := await(t, r.LookupNetIP(ctx, "ip6", "mixed.case.test")); err == nil {
		t.Error("LookupNetIP(ip6) of an IPv4-only hosts entry succeeded")
	}
	if n, _ := srv.Count(); n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
}

func TestHostsFileReload(t *testing.T) {
	path := writeHosts(t, "192.0.2.7 files.example.test\n")
	_, r, _ := faultResolver(t, func(c *Config) { c.HostsFile = path })
	r.hosts.interval = 10 * time.Millisecond
	got, err := await(t, r.LookupHost(context.Background(), "files.example.test"))
	wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr("192.0.2.7")})

	if err := os.WriteFile(path, []byte("192.0.2.77 files.example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new hosts entry", func() bool {
		got, err := await(t, r.LookupHost(context.Background(), "files.example.test"))
		return err == nil && slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.77")})
	})
	// Removed: the name goes to DNS, which does not know it.
	os.Remove(path)
	waitFor(t, "the removed hosts file", func() bool {
		_, err := await(t, r.LookupHost(context.Background(), "files.example.test"))
		return err != nil
	})
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLocalhost(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	ctx := context.Background()
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	for _, name := range []string{"localhost", "LocalHost.", "app.localhost", "a.b.localhost."} {
		got, err := await(t, r.LookupHost(ctx, name))
		wantAddrs(t, got, err, loop)
	}
	got, err := await(t, r.LookupNetIP(ctx, "ip6", "localhost"))
	wantAddrs(t, got, err, loop[1:])
	if c, err := await(t, r.LookupCNAME(ctx, "app.localhost")); err != nil || c != "app.localhost." {
		t.Errorf("LookupCNAME = %q, %v", c, err)
	}
	// RFC 6761 6.3: other types get a negative answer, without a query.
	if _, err := await(t, r.LookupMX(ctx, "localhost")); !dnsError(t, err).IsNotFound {
		t.Errorf("LookupMX(localhost) = %v, want not found", err)
	}
	if _, err := await(t, r.LookupTXT(ctx, "x.localhost")); !dnsError(t, err).IsNotFound {
		t.Errorf("LookupTXT(x.localhost) = %v, want not found", err)
	}
	if n, _ := srv.Count(); n != 0 {
		t.Errorf("%d queries for localhost names", n)
	}
	// Not under localhost.
	if _, err := await(t, r.LookupHost(ctx, "localhost.example.test")); !dnsError(t, err).IsNotFound {
		t.Errorf("localhost.example.test: %v", err)
	}
}

func TestIPLiterals(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	ctx := context.Background()
	for _, c := range []struct{ network, host, want string }{
		{"ip", "192.0.2.1", "192.0.2.1"},
		{"ip", "2001:db8::1", "2001:db8::1"},
		{"ip", "fe80::1%lo", "fe80::1%lo"},
		{"ip4", "192.0.2.1", "192.0.2.1"},
		{"ip6", "::ffff:192.0.2.1", "::ffff:192.0.2.1"},
	} {
		got, err := await(t, r.LookupNetIP(ctx, c.network, c.host))
		wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr(c.want)})
	}
	if _, err := await(t, r.LookupNetIP(ctx, "ip6", "192.0.2.1")); err == nil {
		t.Error("an IPv4 literal for ip6 succeeded")
	}
	if _, err := await(t, r.LookupNetIP(ctx, "tcp", "192.0.2.1")); err == nil {
		t.Error("network tcp accepted")
	}
	if n, _ := srv.Count(); n != 0 {
		t.Errorf("%d queries for IP literals", n)
	}
}

func TestInvalidNames(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	long := ""
	for len(long) < 260 {
		long += "abcdefghij."
	}
	for _, name := range []string{"", ".", "a..b", "bad name.test", "tab\t.test", "x/y.test", "\x00.test",
		"-" + string(make([]byte, 64)), long, "a." + string(make([]byte, 70)) + ".test"} {
		_, err := await(t, r.LookupHost(context.Background(), name))
		if de := dnsError(t, err); !de.IsNotFound {
			t.Errorf("LookupHost(%q) = %v, want not found", name, err)
		}
		if name == "" || name == "." {
			continue // "_x._tcp." is a name to ask for
		}
		if _, err := await(t, r.LookupSRV(context.Background(), "x", "tcp", name)); err == nil {
			t.Errorf("LookupSRV(%q) succeeded", name)
		}
	}
	if _, err := await(t, r.LookupAddr(context.Background(), "not-an-address")); err == nil {
		t.Error("LookupAddr of a name succeeded")
	}
	if n, _ := srv.Count(); n != 0 {
		t.Errorf("%d queries for invalid names", n)
	}
}

func TestSearchList(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) {
		c.Search = []string{"other.test", "example.test."}
		c.Ndots = 1
	})
	ctx := context.Background()
	// "host" has no dot: the search domains first.
	got, err := await(t, r.LookupNetIP(ctx, "ip4", "host"))
	wantAddrs(t, got, err, hostA)
	var asked []string
	for _, q := range srv.Queries() {
		asked = append(asked, q.Msg.Question[0].Name)
	}
	if want := []string{"host.other.test.", "host.example.test."}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	// A rooted name is never searched.
	if _, err := await(t, r.LookupNetIP(ctx, "ip4", "host.")); !dnsError(t, err).IsNotFound {
		t.Errorf("rooted: %v", err)
	}
	// A name with enough dots is tried as it is first, then searched.
	before := len(srv.Queries())
	if _, err := await(t, r.LookupNetIP(ctx, "ip4", "x.y")); !dnsError(t, err).IsNotFound {
		t.Errorf("x.y: %v", err)
	}
	asked = nil
	for _, q := range srv.Queries()[before:] {
		asked = append(asked, q.Msg.Question[0].Name)
	}
	if want := []string{"x.y.", "x.y.other.test.", "x.y.example.test."}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	// Not found anywhere: the error names what was asked.
	_, err = await(t, r.LookupHost(ctx, "nowhere"))
	if de := dnsError(t, err); !de.IsNotFound || de.Name != "nowhere" {
		t.Errorf("nowhere: %#v", de)
	}
	// A timeout on one candidate is reported rather than "not found".
	srv.SetHandler(dnstest.ForName("gone.other.test", dnstest.Rcode(2)))
	_, err = await(t, r.LookupHost(ctx, "gone"))
	if de := dnsError(t, err); de.IsNotFound || !de.IsTemporary {
		t.Errorf("gone: %v, want the server failure", err)
	}
}

func TestCandidates(t *testing.T) {
	s := &settings{search: []string{"a.test", "b.test"}, ndots: 2}
	for _, c := range []struct {
		name   string
		rooted bool
		want   []string
	}{
		{"x", false, []string{"x.a.test", "x.b.test", "x"}},
		{"x.y", false, []string{"x.y.a.test", "x.y.b.test", "x.y"}},
		{"x.y.z", false, []string{"x.y.z", "x.y.z.a.test", "x.y.z.b.test"}},
		{"x", true, []string{"x"}},
	} {
		if got := s.candidates(c.name, c.rooted); !slices.Equal(got, c.want) {
			t.Errorf("candidates(%q, %v) = %q, want %q", c.name, c.rooted, got, c.want)
		}
	}
}
