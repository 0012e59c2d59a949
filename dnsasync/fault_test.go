package dnsasync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// The fault-injection tests ask an in-process miekg/dns server that a test
// makes drop, delay, truncate, forge or break its replies.

var (
	hostAddrs = []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"),
	}
	hostA = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
)

// shortTimeout is the per-try timeout of resolvers that are meant to time
// out.
const shortTimeout = 200 * time.Millisecond

// faultResolver returns a fault server and a resolver asking it, with the
// given configuration changes.
func faultResolver(t *testing.T, edit func(*Config)) (*dnstest.FaultServer, *Resolver, *fdpoll.Group) {
	t.Helper()
	g := newGroup(t, 2)
	srv := dnstest.Fault(t)
	return srv, newResolver(t, g, []string{srv.Addr}, edit), g
}

// lookupA looks up the A records of host from a task of g and from a plain
// goroutine (each with a fresh resolver state for the first), returning the
// goroutine's result.
func lookupA(t *testing.T, r *Resolver, host string) ([]netip.Addr, error) {
	t.Helper()
	return await(t, r.LookupNetIP(context.Background(), "ip4", host))
}

func wantAddrs(t *testing.T, got []netip.Addr, err error, want []netip.Addr) {
	t.Helper()
	if err != nil {
		t.Fatalf("lookup failed: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func dnsError(t *testing.T, err error) *net.DNSError {
	t.Helper()
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *net.DNSError", err, err)
	}
	return de
}

func wantTimeout(t *testing.T, err error) {
	t.Helper()
	de := dnsError(t, err)
	if !de.IsTimeout || !de.Temporary() || de.IsNotFound {
		t.Fatalf("error %v: IsTimeout=%v IsTemporary=%v IsNotFound=%v, want a timeout", err, de.IsTimeout, de.IsTemporary, de.IsNotFound)
	}
}

func TestDroppedReplies(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout; c.Attempts = 2 })
	srv.SetHandler(dnstest.Drop)
	start := time.Now()
	_, err := lookupA(t, r, dnstest.Host)
	wantTimeout(t, err)
	if el := time.Since(start); el < 2*shortTimeout || el > 2*shortTimeout+2*time.Second {
		t.Errorf("gave up after %v, want about 2 attempts x %v", el, shortTimeout)
	}
	if udp, _ := srv.Count(); udp != 2 {
		t.Errorf("server saw %d queries, want 2 (attempts)", udp)
	}
}

func TestDroppedThenAnswered(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout; c.Attempts = 2 })
	srv.SetHandler(dnstest.Nth(1, dnstest.Drop, dnstest.Answer))
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
	qs := srv.Queries()
	if len(qs) != 2 {
		t.Fatalf("server saw %d queries, want 2", len(qs))
	}
	// The retry is a new query: another ID and another source port.
	if qs[0].Msg.Id == qs[1].Msg.Id && qs[0].From.String() == qs[1].From.String() {
		t.Errorf("retry reused ID %d and source %v", qs[0].Msg.Id, qs[0].From)
	}
}

func TestDelayedReply(t *testing.T) {
	t.Run("within the timeout", func(t *testing.T) {
		srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = 2 * time.Second })
		srv.SetHandler(dnstest.Delay(100*time.Millisecond, dnstest.Answer))
		got, err := lookupA(t, r, dnstest.Host)
		wantAddrs(t, got, err, hostA)
	})
	t.Run("after the timeout", func(t *testing.T) {
		srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout; c.Attempts = 2 })
		// The first reply comes when the second try is waiting: it answers
		// the first query (old ID, old port) and must not be taken.
		srv.SetHandler(dnstest.Nth(1, dnstest.Delay(shortTimeout+50*time.Millisecond, dnstest.Answer), dnstest.Drop))
		_, err := lookupA(t, r, dnstest.Host)
		wantTimeout(t, err)
	})
}

func TestTruncatedReplyUsesTCP(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.Truncate)
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
	if udp, tcp := srv.Count(); udp != 1 || tcp != 1 {
		t.Errorf("queries: %d UDP, %d TCP; want 1 and 1", udp, tcp)
	}
}

func TestTruncatedReplyBadTCP(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(func(x *dnstest.Exchange) {
		if x.TCP {
			dnstest.WrongID(x)
		} else {
			dnstest.Truncate(x)
		}
	})
	_, err := lookupA(t, r, dnstest.Host)
	if de := dnsError(t, err); de.IsNotFound || de.IsTimeout {
		t.Fatalf("a TCP reply with another ID gave %v", err)
	}
}

// TestForgedReplies sends a forged reply first and the genuine one 50ms
// later: the forged one must be dropped and the query keep waiting. Sent
// alone, a forged reply leaves the query to time out.
func TestForgedReplies(t *testing.T) {
	for _, c := range []struct {
		name   string
		forge  dnstest.Handler
		reason dropReason // -1: filtered by the kernel, never seen
	}{
		{"wrong ID", dnstest.WrongID, dropID},
		{"not a response", dnstest.NotResponse, dropID},
		{"wrong name", dnstest.WrongQuestion, dropQuestion},
		{"wrong type", dnstest.WrongType, dropQuestion},
		{"wrong source port", dnstest.OtherSource, -1},
		{"malformed", dnstest.Malformed, dropMalformed},
		{"shorter than a header", dnstest.ShortDatagram, dropShort},
		{"oversized", dnstest.Oversized(2000), dropOversized},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = 2 * time.Second })
			srv.SetHandler(dnstest.Then(c.forge, dnstest.Delay(50*time.Millisecond, dnstest.Answer)))
			got, err := lookupA(t, r, dnstest.Host)
			wantAddrs(t, got, err, hostA)
			if c.reason >= 0 && r.drops[c.reason].Load() == 0 {
				t.Errorf("no datagram dropped for reason %d", c.reason)
			}
		})
		t.Run(c.name+" alone", func(t *testing.T) {
			srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout })
			srv.SetHandler(c.forge)
			_, err := lookupA(t, r, dnstest.Host)
			wantTimeout(t, err)
		})
	}
}

// TestOversizedWithoutEDNS checks the limit after a FORMERR fallback: 512
// bytes.
func TestOversizedWithoutEDNS(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout })
	srv.SetHandler(func(x *dnstest.Exchange) {
		if x.Req.IsEdns0() != nil {
			dnstest.FormErrOnEDNS(x)
			return
		}
		dnstest.Oversized(600)(x)
	})
	_, err := lookupA(t, r, dnstest.Host)
	wantTimeout(t, err)
	if r.drops[dropOversized].Load() == 0 {
		t.Error("the 600-byte reply to a query without EDNS0 was not dropped")
	}
}

func TestFormErrRetriesWithoutEDNS(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.FormErrOnEDNS)
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
	qs := srv.Queries()
	if len(qs) != 2 || qs[0].Msg.IsEdns0() == nil || qs[1].Msg.IsEdns0() != nil {
		t.Fatalf("want a query with EDNS0 then one without; got %d queries", len(qs))
	}
	if opt := qs[0].Msg.IsEdns0(); opt.UDPSize() != DefaultUDPSize {
		t.Errorf("advertised %d bytes, want %d", opt.UDPSize(), DefaultUDPSize)
	}
}

func TestServfailThenSecondServer(t *testing.T) {
	g := newGroup(t, 1)
	bad, good := dnstest.Fault(t), dnstest.Fault(t)
	bad.SetHandler(dnstest.Rcode(dns.RcodeServerFailure))
	r := newResolver(t, g, []string{bad.Addr, good.Addr}, nil)
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
	if n, _ := bad.Count(); n != 1 {
		t.Errorf("first server saw %d queries, want 1", n)
	}
	if n, _ := good.Count(); n != 1 {
		t.Errorf("second server saw %d queries, want 1", n)
	}
}

func TestFailover(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  dnstest.Handler
	}{
		{"refused", dnstest.Rcode(dns.RcodeRefused)},
		{"not implemented", dnstest.Rcode(dns.RcodeNotImplemented)},
		{"lame referral", func(x *dnstest.Exchange) {
			m := new(dns.Msg)
			m.SetReply(x.Req)
			ns, _ := dns.NewRR("example.test. 300 IN NS ns.elsewhere.test.")
			m.Ns = []dns.RR{ns}
			x.Reply(m)
		}},
		{"timeout", dnstest.Drop},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGroup(t, 1)
			bad, good := dnstest.Fault(t), dnstest.Fault(t)
			bad.SetHandler(c.bad)
			r := newResolver(t, g, []string{bad.Addr, good.Addr}, func(c *Config) { c.Timeout = shortTimeout })
			got, err := lookupA(t, r, dnstest.Host)
			wantAddrs(t, got, err, hostA)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		g := newGroup(t, 1)
		good := dnstest.Fault(t)
		pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
		closed := pc.LocalAddr().String()
		pc.Close()
		r := newResolver(t, g, []string{closed, good.Addr}, func(c *Config) { c.Timeout = 5 * time.Second })
		start := time.Now()
		got, err := lookupA(t, r, dnstest.Host)
		wantAddrs(t, got, err, hostA)
		// The ICMP port unreachable ends the try at once.
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v: the closed port was waited for", el)
		}
	})
}

func TestAllServersFail(t *testing.T) {
	t.Run("servfail", func(t *testing.T) {
		g := newGroup(t, 1)
		a, b := dnstest.Fault(t), dnstest.Fault(t)
		a.SetHandler(dnstest.Rcode(dns.RcodeServerFailure))
		b.SetHandler(dnstest.Rcode(dns.RcodeServerFailure))
		r := newResolver(t, g, []string{a.Addr, b.Addr}, func(c *Config) { c.Attempts = 2 })
		_, err := lookupA(t, r, dnstest.Host)
		de := dnsError(t, err)
		if !de.IsTemporary || de.IsTimeout || de.IsNotFound {
			t.Fatalf("%v: want a temporary server failure", err)
		}
		na, _ := a.Count()
		nb, _ := b.Count()
		if na != 2 || nb != 2 {
			t.Errorf("servers saw %d and %d queries, want 2 each (2 attempts)", na, nb)
		}
	})
	t.Run("timeout and servfail", func(t *testing.T) {
		g := newGroup(t, 1)
		a, b := dnstest.Fault(t), dnstest.Fault(t)
		a.SetHandler(dnstest.Drop)
		b.SetHandler(dnstest.Rcode(dns.RcodeServerFailure))
		r := newResolver(t, g, []string{a.Addr, b.Addr}, func(c *Config) { c.Timeout = shortTimeout })
		_, err := lookupA(t, r, dnstest.Host)
		de := dnsError(t, err)
		if !de.IsTemporary || de.IsTimeout {
			t.Fatalf("%v: want a temporary failure that is not a timeout (one server answered)", err)
		}
	})
	t.Run("every try timed out", func(t *testing.T) {
		g := newGroup(t, 1)
		a, b := dnstest.Fault(t), dnstest.Fault(t)
		a.SetHandler(dnstest.Drop)
		b.SetHandler(dnstest.Drop)
		r := newResolver(t, g, []string{a.Addr, b.Addr}, func(c *Config) { c.Timeout = shortTimeout; c.Attempts = 2 })
		_, err := lookupA(t, r, dnstest.Host)
		wantTimeout(t, err)
		na, _ := a.Count()
		nb, _ := b.Count()
		if na != 2 || nb != 2 {
			t.Errorf("servers saw %d and %d queries, want 2 each", na, nb)
		}
	})
}

func TestRotate(t *testing.T) {
	g := newGroup(t, 1)
	a, b := dnstest.Fault(t), dnstest.Fault(t)
	r := newResolver(t, g, []string{a.Addr, b.Addr}, func(c *Config) { c.Rotate = true; c.CacheSize = -1 })
	for range 10 {
		if _, err := lookupA(t, r, dnstest.Host); err != nil {
			t.Fatal(err)
		}
	}
	na, _ := a.Count()
	nb, _ := b.Count()
	if na != 5 || nb != 5 {
		t.Errorf("servers saw %d and %d queries, want 5 each", na, nb)
	}
}

func TestRandomIDsAndPorts(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.CacheSize = -1 })
	const n = 50
	for range n {
		if _, err := lookupA(t, r, dnstest.Host); err != nil {
			t.Fatal(err)
		}
	}
	ids, ports := map[uint16]bool{}, map[string]bool{}
	for _, q := range srv.Queries() {
		ids[q.Msg.Id] = true
		ports[q.From.String()] = true
	}
	// 50 IDs from 65536: a repeat has a 2% chance, two repeats far less.
	if len(ids) < n-1 {
		t.Errorf("%d distinct IDs in %d queries", len(ids), n)
	}
	if len(ports) < n-1 {
		t.Errorf("%d distinct source ports in %d queries", len(ports), n)
	}
}

func TestNotFound(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	for _, c := range []struct{ network, host string }{
		{"ip", dnstest.Missing},       // NXDOMAIN
		{"ip6", dnstest.V4Only},       // NODATA
		{"ip4", "nothing.other.test"}, // NXDOMAIN in another zone
	} {
		_, err := await(t, r.LookupNetIP(context.Background(), c.network, c.host))
		de := dnsError(t, err)
		if !de.IsNotFound || de.IsTemporary || de.IsTimeout || de.Name != c.host || de.Server != srv.Addr {
			t.Errorf("LookupNetIP(%s, %s) = %#v, want not found from %s", c.network, c.host, de, srv.Addr)
		}
	}
	_, err := await(t, r.LookupTXT(context.Background(), dnstest.Host))
	if de := dnsError(t, err); !de.IsNotFound {
		t.Errorf("LookupTXT of a name without TXT: %v, want not found", err)
	}
}

func TestContextEndsLookup(t *testing.T) {
	srv, r, g := faultResolver(t, func(c *Config) { c.Timeout = 2 * time.Second })
	srv.SetHandler(dnstest.Drop)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := await(t, r.LookupHost(ctx, dnstest.Host))
	if !errors.Is(err, context.DeadlineExceeded) || !dnsError(t, err).IsTimeout {
		t.Fatalf("got %v, want a DNSError wrapping context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("returned after %v", el)
	}
	// In a task, with cancellation.
	inTask(t, g.Loop(0), func(tctx context.Context) {
		ctx, cancel := context.WithCancel(tctx)
		f := r.LookupMX(ctx, dnstest.Mail)
		cancel()
		_, err := fdpoll.Await(tctx, f)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
	// Exchange's own tries end with its context too.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	m := new(dns.Msg)
	m.SetQuestion(dnstest.Host+".", dns.TypeA)
	start = time.Now()
	if _, err := await(t, r.Exchange(ctx2, m)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exchange: got %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Exchange returned after %v", el)
	}
}

func TestExchange(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	m := new(dns.Msg)
	m.SetQuestion(dnstest.SRVName+".", dns.TypeSRV)
	m.Id = 4242
	reply, err := await(t, r.Exchange(context.Background(), m))
	if err != nil {
		t.Fatal(err)
	}
	if reply.Id != 4242 || len(reply.Answer) != 3 || reply.Rcode != dns.RcodeSuccess {
		t.Fatalf("reply: %v", reply)
	}
	if m.Id != 4242 || m.IsEdns0() != nil {
		t.Error("Exchange modified its message")
	}
	if q := srv.Queries()[0].Msg; q.Id == 4242 || q.IsEdns0() == nil {
		t.Errorf("sent ID %d (want a random one), EDNS0 %v", q.Id, q.IsEdns0() != nil)
	}

	// A failing server's reply is returned, not an error.
	srv.SetHandler(dnstest.Rcode(dns.RcodeServerFailure))
	reply, err = await(t, r.Exchange(context.Background(), m))
	if err != nil || reply.Rcode != dns.RcodeServerFailure {
		t.Fatalf("got %v, %v; want the SERVFAIL reply", reply, err)
	}
	// NXDOMAIN is an answer like any other.
	srv.SetHandler(nil)
	m.SetQuestion(dnstest.Missing+".", dns.TypeA)
	reply, err = await(t, r.Exchange(context.Background(), m))
	if err != nil || reply.Rcode != dns.RcodeNameError {
		t.Fatalf("got %v, %v; want NXDOMAIN", reply, err)
	}
	// Bad queries.
	for _, bad := range []*dns.Msg{nil, new(dns.Msg), {Question: make([]dns.Question, 2)}} {
		if _, err := await(t, r.Exchange(context.Background(), bad)); err == nil {
			t.Errorf("Exchange(%v) succeeded", bad)
		} else {
			dnsError(t, err)
		}
	}
}

// TestCNAMEChase checks a CNAME whose target the server does not answer
// for: the resolver asks again for the target, and caches both.
func TestCNAMEChase(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.ForName(dnstest.External, func(x *dnstest.Exchange) {
		m := new(dns.Msg)
		m.SetReply(x.Req)
		m.Authoritative = true
		rr, _ := dns.NewRR(dnstest.External + ". 300 IN CNAME " + dnstest.ExternalTarget + ".")
		m.Answer = []dns.RR{rr}
		x.Reply(m)
	}))
	got, err := lookupA(t, r, dnstest.External)
	wantAddrs(t, got, err, []netip.Addr{netip.MustParseAddr("192.0.2.100")})
	cname, err := await(t, r.LookupCNAME(context.Background(), dnstest.External))
	if err != nil || cname != dnstest.ExternalTarget+"." {
		t.Errorf("LookupCNAME = %q, %v", cname, err)
	}
	before, _ := srv.Count()
	if got, err := lookupA(t, r, dnstest.ExternalTarget); err != nil || len(got) != 1 {
		t.Errorf("target: %v, %v", got, err)
	}
	if after, _ := srv.Count(); after != before {
		t.Errorf("the chain's target was not cached: %d queries, then %d", before, after)
	}
}

func TestCNAMELoopAcrossReplies(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	// a -> b in one reply, b -> a in the next: each reply alone is fine.
	srv.SetHandler(func(x *dnstest.Exchange) {
		m := new(dns.Msg)
		m.SetReply(x.Req)
		m.Authoritative = true
		target := "a.other.test."
		if x.Req.Question[0].Name == "a.other.test." {
			target = "b.other.test."
		}
		rr, _ := dns.NewRR(x.Req.Question[0].Name + " 300 IN CNAME " + target)
		m.Answer = []dns.RR{rr}
		x.Reply(m)
	})
	_, err := lookupA(t, r, "a.other.test")
	if de := dnsError(t, err); de.Err != errCNAMELoop {
		t.Fatalf("got %v, want a CNAME loop", err)
	}
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
}

func TestCNAMEChainTooLong(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	// n0 -> n1 -> ... -> n39, each hop in its own reply.
	srv.SetHandler(func(x *dnstest.Exchange) {
		m := new(dns.Msg)
		m.SetReply(x.Req)
		m.Authoritative = true
		var i int
		if _, err := fmt.Sscanf(x.Req.Question[0].Name, "n%d.chain.test.", &i); err != nil {
			x.Reply(m)
			return
		}
		rr, _ := dns.NewRR(x.Req.Question[0].Name + " 300 IN CNAME " + chainName(i+1))
		m.Answer = []dns.RR{rr}
		x.Reply(m)
	})
	_, err := lookupA(t, r, chainName(0))
	if de := dnsError(t, err); de.Err != errCNAMETooLong {
		t.Fatalf("got %v, want a chain too long", err)
	}
	if n, _ := srv.Count(); n != MaxCNAMEHops+1 {
		t.Errorf("%d queries, want %d", n, MaxCNAMEHops+1)
	}
}

func chainName(i int) string { return fmt.Sprintf("n%d.chain.test.", i) }
