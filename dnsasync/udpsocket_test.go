package dnsasync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// Tests of the UDP sockets that a loop's concurrent queries to one server
// share.

// numberedName is the n-th name of the numbered answers below.
func numberedName(n int) string { return fmt.Sprintf("n%d.example.test", n) }

// numberedAddr is the address numberedReply gives numberedName(n).
func numberedAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)})
}

// numberedReply answers an A query for numberedName(n) with
// numberedAddr(n) (and an AAAA query with no records), after a delay that
// falls as n rises, so that replies come in the reverse order of the
// queries. It returns false for other names.
func numberedReply(x *dnstest.Exchange, count int, step time.Duration) bool {
	label, _, _ := strings.Cut(x.Req.Question[0].Name, ".")
	n, err := strconv.Atoi(strings.TrimPrefix(label, "n"))
	if err != nil || !strings.HasPrefix(label, "n") {
		return false
	}
	m := new(dns.Msg)
	m.SetReply(x.Req)
	m.RecursionAvailable = true
	if x.Req.Question[0].Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: x.Req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   numberedAddr(n).AsSlice(),
		})
	} else {
		m.Ns = append(m.Ns, &dns.SOA{
			Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns:  "ns.example.test.", Mbox: "admin.example.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60,
		})
	}
	if x.Sleep(time.Duration(count-n) * step) {
		x.Reply(m)
	}
	return true
}

// lookupMany looks up numberedName(i) for i in [0, n) at once from tasks of
// loop l, and checks that each got its own address.
func lookupMany(t *testing.T, r *Resolver, l *fdpoll.Loop, n int) {
	t.Helper()
	errs := make([]error, n)
	inTask(t, l, func(ctx context.Context) {
		fs := make([]*fdpoll.Future[[]netip.Addr], n)
		for i := range n {
			fs[i] = r.LookupNetIP(ctx, "ip4", numberedName(i))
		}
		for i, f := range fs {
			got, err := fdpoll.Await(ctx, f)
			switch {
			case err != nil:
				errs[i] = err
			case len(got) != 1 || got[0] != numberedAddr(i):
				errs[i] = fmt.Errorf("%s: got %v, want %v", numberedName(i), got, numberedAddr(i))
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// portsOf counts the server's UDP queries by client port.
func portsOf(srv *dnstest.FaultServer) map[string]int {
	ports := make(map[string]int)
	for _, q := range srv.Queries() {
		if !q.TCP {
			ports[q.From.String()]++
		}
	}
	return ports
}

// TestQueriesShareSockets sends 150 queries that are all in flight at once
// (the server holds every reply back, then answers in the reverse order):
// each lookup gets its own answer, they went out on few sockets, none of
// which carried more than UDPQueriesPerSocket queries, and every socket is
// closed afterwards (newGroup checks the fds).
func TestQueriesShareSockets(t *testing.T) {
	const n = 150
	srv, r, g := faultResolver(t, func(c *Config) { c.CacheSize = -1; c.UDPQueriesPerSocket = 40 })
	srv.SetHandler(func(x *dnstest.Exchange) { numberedReply(x, n, time.Millisecond) })
	lookupMany(t, r, g.Loop(0), n)
	ports := portsOf(srv)
	total := 0
	for from, k := range ports {
		total += k
		if k > 40 {
			t.Errorf("%d queries from %s, want at most 40 per socket", k, from)
		}
	}
	if total != n {
		t.Fatalf("server saw %d UDP queries, want %d", total, n)
	}
	if len(ports) > 8 {
		t.Errorf("%d queries went out from %d ports: sockets were not shared", n, len(ports))
	}
	if d := r.drops[dropID].Load() + r.drops[dropQuestion].Load(); d != 0 {
		t.Errorf("%d replies were dropped as not matching", d)
	}
}

// TestSocketPerQuery: with UDPQueriesPerSocket 1, queries in flight at
// once each have a port of their own.
func TestSocketPerQuery(t *testing.T) {
	const n = 30
	srv, r, g := faultResolver(t, func(c *Config) { c.CacheSize = -1; c.UDPQueriesPerSocket = 1 })
	srv.SetHandler(func(x *dnstest.Exchange) { numberedReply(x, n, 5*time.Millisecond) })
	lookupMany(t, r, g.Loop(1), n)
	ports := portsOf(srv)
	if len(ports) != n {
		t.Errorf("%d queries came from %d ports, want one port each", n, len(ports))
	}
}

// TestSharedSocketCancelOne cancels one of two queries waiting on the same
// socket: the other still gets its answer, and the cancelled one's reply,
// arriving while the other still waits, is dropped, not taken by anyone.
func TestSharedSocketCancelOne(t *testing.T) {
	srv, r, g := faultResolver(t, nil)
	srv.SetHandler(func(x *dnstest.Exchange) { numberedReply(x, 2, 200*time.Millisecond) })
	inTask(t, g.Loop(0), func(ctx context.Context) {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		m0, m1 := new(dns.Msg), new(dns.Msg)
		m0.SetQuestion(numberedName(0)+".", dns.TypeA) // answered after 400ms
		m1.SetQuestion(numberedName(1)+".", dns.TypeA) // after 200ms
		f0 := r.Exchange(ctx, m0)
		f1 := r.Exchange(short, m1)
		if _, err := fdpoll.Await(ctx, f1); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled query: %v, want its context's deadline", err)
		}
		reply, err := fdpoll.Await(ctx, f0)
		if err != nil || len(reply.Answer) != 1 || !reply.Answer[0].(*dns.A).A.Equal(numberedAddr(0).AsSlice()) {
			t.Errorf("the other query: %v, %v", reply, err)
		}
	})
	if ports := portsOf(srv); len(ports) != 1 {
		t.Errorf("the two queries came from %d ports, want 1 (shared)", len(ports))
	}
	if r.drops[dropID].Load() != 1 {
		t.Errorf("%d replies dropped for their ID, want 1 (the cancelled query's)", r.drops[dropID].Load())
	}
}

// TestSharedSocketUnreachable: several queries waiting on one socket to a
// closed port all end at once with the ICMP error, and go on to the next
// server, whichever of the socket's reads and sends the error shows in.
func TestSharedSocketUnreachable(t *testing.T) {
	g := newGroup(t, 1)
	good := dnstest.Fault(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	r := newResolver(t, g, []string{closed, good.Addr}, func(c *Config) { c.Timeout = 5 * time.Second; c.CacheSize = -1 })
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := await(t, r.LookupNetIP(context.Background(), "ip4", dnstest.Host))
			if err != nil || len(got) != len(hostA) {
				t.Errorf("lookup %d: %v %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: the closed port was waited for", el)
	}
}

// TestSharedSocketIDsUnique gives a second query the ID of one already
// waiting on the socket: it goes out under another ID (in the message and
// on the wire), and both are answered.
func TestSharedSocketIDsUnique(t *testing.T) {
	srv, r, g := faultResolver(t, nil)
	srv.SetHandler(dnstest.Delay(50*time.Millisecond, dnstest.Answer))
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) {
		cl := call{ctx: ctx, l: l}
		s, c, err := r.acquireUDP(cl, srv.Addr, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		defer s.release()
		s2, c2, err := r.acquireUDP(cl, srv.Addr, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		defer s2.release()
		if s2 != s {
			t.Error("a second query did not share the socket")
			return
		}
		q1, q2 := r.newQuery(dnstest.Host, dns.TypeA), r.newQuery(dnstest.Host, dns.TypeAAAA)
		w1, _ := q1.Pack()
		w2, _ := q2.Pack()
		r.setID(q1, w1)
		q2.Id = q1.Id
		w2[0], w2[1] = w1[0], w1[1]
		u1, err := s.send(r, c, q1, w1, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		defer s.forget(u1.q.Id, u1)
		u2, err := s2.send(r, c2, q2, w2, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		defer s.forget(u2.q.Id, u2)
		if q2.Id == q1.Id || int(w2[0])<<8|int(w2[1]) != int(q2.Id) {
			t.Errorf("second query sent as ID %d (wire %d), first is %d", q2.Id, int(w2[0])<<8|int(w2[1]), q1.Id)
		}
		for _, u := range []*udpQuery{u1, u2} {
			reply, err := fdpoll.Await(ctx, &u.reply)
			if err != nil || reply.Id != u.q.Id || reply.Question[0].Qtype != u.q.Question[0].Qtype {
				t.Errorf("query %d: reply %v, %v", u.q.Id, reply, err)
			}
		}
	})
}

// TestSharedSocketRefusedOnSend: the ICMP "port unreachable" caused by one
// query may show in the socket's next send rather than in a read; the
// query waiting for its reply fails then, instead of waiting out its
// timeout.
func TestSharedSocketRefusedOnSend(t *testing.T) {
	g := newGroup(t, 1)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	r := newResolver(t, g, []string{closed}, nil)
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) {
		cl := call{ctx: ctx, l: l}
		s, c, err := r.acquireUDP(cl, closed, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		defer s.release()
		q1, q2 := r.newQuery(dnstest.Host, dns.TypeA), r.newQuery(dnstest.Host, dns.TypeAAAA)
		w1, _ := q1.Pack()
		w2, _ := q2.Pack()
		u1, err := s.send(r, c, q1, w1, 1232)
		if err != nil {
			t.Error(err)
			return
		}
		// Hold the loop (its socket reader cannot run) while the ICMP
		// error comes back from the loopback interface.
		time.Sleep(50 * time.Millisecond)
		if _, err := s.send(r, c, q2, w2, 1232); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("second send: %v, want ECONNREFUSED", err)
		}
		if _, err := u1.reply.Result(); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("first query: %v, want ECONNREFUSED at once", err)
		}
	})
}

// TestExchangeLargerBuffer: an Exchange advertising a larger EDNS0 buffer
// than the resolver's gets a reply of that size, even while a lookup's
// query (with the resolver's smaller buffer) is in flight to the server.
func TestExchangeLargerBuffer(t *testing.T) {
	srv, r, g := faultResolver(t, func(c *Config) { c.Timeout = shortTimeout })
	srv.SetHandler(dnstest.Delay(50*time.Millisecond, dnstest.Answer))
	inTask(t, g.Loop(0), func(ctx context.Context) {
		small := new(dns.Msg)
		small.SetQuestion(dnstest.Host+".", dns.TypeA)
		big := new(dns.Msg)
		big.SetQuestion(dnstest.BigTXT+".", dns.TypeTXT)
		big.SetEdns0(8192, false) // the reply is about 4.5 KB
		fs := r.Exchange(ctx, small)
		fb := r.Exchange(ctx, big)
		reply, err := fdpoll.Await(ctx, fb)
		switch {
		case err != nil:
			t.Errorf("Exchange with an 8192-byte buffer: %v", err)
		case reply.Len() <= DefaultUDPSize || len(reply.Answer) != dnstest.BigTXTCount:
			t.Errorf("reply of %d bytes with %d records, want over %d bytes and %d records", reply.Len(), len(reply.Answer), DefaultUDPSize, dnstest.BigTXTCount)
		}
		if _, err := fdpoll.Await(ctx, fs); err != nil {
			t.Errorf("the other query: %v", err)
		}
	})
	if udp, tcp := srv.Count(); udp != 2 || tcp != 0 {
		t.Errorf("queries: %d UDP, %d TCP; want 2 and 0", udp, tcp)
	}
}

// TestSharedSocketOwnSendError: a datagram that fails on its own (too
// large for UDP) fails its query alone; another query waiting on the same
// socket still gets its answer.
func TestSharedSocketOwnSendError(t *testing.T) {
	srv, r, g := faultResolver(t, nil)
	srv.SetHandler(dnstest.Delay(100*time.Millisecond, dnstest.Answer))
	inTask(t, g.Loop(0), func(ctx context.Context) {
		small := new(dns.Msg)
		small.SetQuestion(dnstest.Host+".", dns.TypeA)
		huge := new(dns.Msg)
		huge.SetQuestion(dnstest.Host+".", dns.TypeAAAA)
		for len(huge.Extra) < 258 { // about 65,520 bytes: packs, but exceeds a UDP datagram
			huge.Extra = append(huge.Extra, &dns.TXT{
				Hdr: dns.RR_Header{Name: fmt.Sprintf("x%d.", len(huge.Extra)), Rrtype: dns.TypeTXT, Class: dns.ClassINET},
				Txt: []string{strings.Repeat("a", 240)},
			})
		}
		fs := r.Exchange(ctx, small)
		fh := r.Exchange(ctx, huge)
		if _, err := fdpoll.Await(ctx, fh); err == nil || !strings.Contains(err.Error(), syscall.EMSGSIZE.Error()) {
			t.Errorf("oversized query: %v, want %q", err, syscall.EMSGSIZE.Error())
		}
		reply, err := fdpoll.Await(ctx, fs)
		if err != nil || len(reply.Answer) == 0 {
			t.Errorf("the other query: %v, %v", reply, err)
		}
	})
}
