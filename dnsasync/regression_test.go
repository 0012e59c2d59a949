package dnsasync

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// An empty datagram from the server's address/port (no ID to guess) must be
// dropped like any other malformed datagram; the try must keep waiting.
func TestEmptyDatagramIsDropped(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = 2 * time.Second })
	srv.SetHandler(dnstest.Then(func(x *dnstest.Exchange) { x.WriteRaw([]byte{}) }, dnstest.Delay(50*time.Millisecond, dnstest.Answer)))
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
}

// Closing the group of the caller whose lookup started a coalesced query
// must not fail the other lookups that joined it.
func TestCallersGroupCloseDoesNotCancelSharedQuery(t *testing.T) {
	g2 := newGroup(t, 1)
	srv := dnstest.Fault(t)
	srv.SetHandler(dnstest.Delay(400*time.Millisecond, dnstest.Answer))
	r := newResolver(t, g2, []string{srv.Addr}, nil)

	g1, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	// A task of g1 starts the lookup: its query runs on g1's loop.
	g1.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host))
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	// An unrelated caller (plain goroutine, runs on g2) joins the flight.
	joiner := r.LookupHost(context.Background(), dnstest.Host)
	time.Sleep(50 * time.Millisecond)
	g1.Close()
	got, err := await(t, joiner)
	if err != nil {
		t.Fatalf("joiner with a live context failed: %v (errors.Is(err, context.Canceled)=%v)", err, errors.Is(err, context.Canceled))
	}
	wantAddrs(t, got, err, hostAddrs)
}

// A shared query started on a loop that is closing must not leave a flight
// that every later lookup of the name joins and hangs on.
func TestSharedQueryOnClosingLoopDoesNotStick(t *testing.T) {
	g2 := newGroup(t, 1)
	srv := dnstest.Fault(t)
	srv.SetHandler(func(x *dnstest.Exchange) {
		if x.Req.Question[0].Name == "host.nothere.test." {
			dnstest.Delay(300*time.Millisecond, dnstest.Answer)(x) // NODATA, not cached
			return
		}
		dnstest.Answer(x)
	})
	r := newResolver(t, g2, []string{srv.Addr}, func(c *Config) {
		c.Search = []string{"nothere.test", "example.test"}
		c.Ndots = 1
	})
	g1, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	// Someone on g2 leads the flights of the first candidate.
	lead := r.LookupHost(context.Background(), "host.nothere.test.")
	time.Sleep(50 * time.Millisecond)
	// A task on g1 looks up "host": it joins those flights.
	g1.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		fdpoll.Await(ctx, r.LookupHost(ctx, "host"))
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	// g1's loop is busy while the flights complete and g1 starts closing.
	g1.Loop(0).Post(func() { time.Sleep(500 * time.Millisecond) })
	time.Sleep(350 * time.Millisecond)
	g1.Close()
	await(t, lead)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = fdpoll.Await(ctx, r.LookupNetIP(ctx, "ip4", "host.example.test."))
	n := 0
	for _, q := range srv.Queries() {
		if q.Msg.Question[0].Name == "host.example.test." {
			n++
		}
	}
	if err != nil {
		t.Fatalf("lookup after g1 closed: %v; queries for host.example.test sent: %d", err, n)
	}
}

// One search domain that checkName rejects (here an internationalised one,
// which glibc accepts) must not make the resolver lose its nameservers.
func TestOddSearchDomainKeepsServers(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	if err := writeFile(path, "nameserver 192.0.2.53\nsearch corp.example bücher.example\n"); err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewResolver(cfg); err != nil {
		t.Fatalf("resolv.conf with a search domain glibc accepts is rejected: %v (Default() would fall back to 127.0.0.1:53)", err)
	}
}

// With a REFUSED from one server and a timeout from the other, the error is
// not IsTimeout: not every try timed out.
func TestIsTimeoutOnlyWhenAllTimedOut(t *testing.T) {
	g := newGroup(t, 1)
	a, b := dnstest.Fault(t), dnstest.Fault(t)
	a.SetHandler(dnstest.Rcode(5)) // REFUSED
	b.SetHandler(dnstest.Drop)
	r := newResolver(t, g, []string{a.Addr, b.Addr}, func(c *Config) { c.Timeout = shortTimeout })
	_, err := lookupA(t, r, dnstest.Host)
	if de := dnsError(t, err); de.IsTimeout {
		t.Fatalf("%v: IsTimeout although server %s answered REFUSED", err, a.Addr)
	}
}

// A lookup on a resolver whose group is closed fails with a *net.DNSError,
// not a bare fdpoll.ErrClosed.
func TestClosedResolverGroupErrorIsDNSError(t *testing.T) {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	r := newResolver(t, g, []string{"127.0.0.1:53"}, nil)
	_, err = await(t, r.LookupHost(context.Background(), "host.example.test"))
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *net.DNSError", err, err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// LookupCNAME checks the CNAME target, as SRV, MX and PTR names are (Go's
// net rejects such names since CVE-2021-33195).
func TestLookupCNAMEChecksName(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	const bad = "<script>alert(1)<.example.test."
	srv.SetHandler(func(x *dnstest.Exchange) {
		m := new(dns.Msg)
		m.SetReply(x.Req)
		m.RecursionAvailable = true
		q := x.Req.Question[0]
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: bad})
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: bad, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)})
		}
		x.Reply(m)
	})
	got, err := await(t, r.LookupCNAME(context.Background(), "xss.example.test"))
	if err == nil && checkName(fromWire(got)) != nil {
		t.Fatalf("LookupCNAME returned invalid name %q", got)
	}
}

// RFC 2181 section 8: a TTL with the top bit set is taken as 0, not cached
// for MaxTTL.
func TestTTLTopBitMeansZero(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(func(x *dnstest.Exchange) {
		m := x.Answer()
		for _, rr := range m.Answer {
			rr.Header().Ttl = 0x80000000
		}
		x.Reply(m)
	})
	lookupA(t, r, dnstest.Host)
	lookupA(t, r, dnstest.Host)
	if n, _ := srv.Count(); n != 2 {
		t.Fatalf("record with TTL 2^31 was cached (%d queries for 2 lookups)", n)
	}
}

// One overlong hosts line (a long comment, say) is skipped, not every entry
// after it.
func TestHostsLongLineSkipped(t *testing.T) {
	data := "# " + strings.Repeat("x", 1<<20) + "\n192.0.2.7 after.example\n"
	if got := parseHosts([]byte(data)).addrs["after.example"]; len(got) == 0 {
		t.Fatal("entry after an over-long line was dropped")
	}
}
