package dnstest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A FaultServer is an in-process DNS server (miekg/dns) on a loopback port,
// UDP and TCP, for fault injection. By default it answers from the test
// zones like a recursive server (RA set, CNAME chains followed); a test
// sets a Handler to drop, delay, truncate, forge or break its replies.
type FaultServer struct {
	// Addr is "127.0.0.1:port".
	Addr string

	udp, tcp *dns.Server
	pc       net.PacketConn
	ln       net.Listener
	other    net.PacketConn // sends datagrams from another port
	zone     *zoneData
	stop     chan struct{}
	closed   sync.Once

	mu      sync.Mutex
	handler Handler
	log     []Query
	udpN    atomic.Int64
	tcpN    atomic.Int64
}

// A Query is one query the server received.
type Query struct {
	Msg  *dns.Msg
	TCP  bool
	From net.Addr
}

// A Handler decides what the server does with one query: it calls
// methods of x to reply (or not).
type Handler func(x *Exchange)

// An Exchange is one query being handled.
type Exchange struct {
	// Req is the query.
	Req *dns.Msg
	// TCP tells whether it came over TCP.
	TCP bool
	// N counts the queries of this transport so far, this one included.
	N int

	srv *FaultServer
	w   dns.ResponseWriter
}

// StartFaultServer starts a FaultServer. The caller stops it with Close.
func StartFaultServer() (*FaultServer, error) {
	zd, err := loadZones()
	if err != nil {
		return nil, err
	}
	pc, ln, err := listenBoth()
	if err != nil {
		return nil, err
	}
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		ln.Close()
		return nil, err
	}
	s := &FaultServer{Addr: pc.LocalAddr().String(), pc: pc, ln: ln, other: other, zone: zd, stop: make(chan struct{})}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) { s.serve(w, m, false) }), NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) { s.serve(w, m, true) }), NotifyStartedFunc: notify}
	// Accept anything a client sends: malformed-looking queries are what
	// some tests are about.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	s.udp.MsgAcceptFunc, s.tcp.MsgAcceptFunc = accept, accept
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			s.Close()
			return nil, errors.New("dnstest: fault server did not start")
		}
	}
	return s, nil
}

// Fault starts a FaultServer for t and stops it when t ends.
func Fault(t testing.TB) *FaultServer {
	t.Helper()
	s, err := StartFaultServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the server, waking handlers that are delaying a reply.
func (s *FaultServer) Close() error {
	s.closed.Do(func() {
		close(s.stop)
		s.udp.Shutdown()
		s.tcp.Shutdown()
		s.other.Close()
	})
	return nil
}

// SetHandler makes h decide every later reply; nil restores the default
// (Answer).
func (s *FaultServer) SetHandler(h Handler) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// Queries returns the queries received so far.
func (s *FaultServer) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.log...)
}

// Count returns how many queries arrived over UDP and over TCP.
func (s *FaultServer) Count() (udp, tcp int) { return int(s.udpN.Load()), int(s.tcpN.Load()) }

func (s *FaultServer) serve(w dns.ResponseWriter, m *dns.Msg, tcp bool) {
	n := s.udpN.Add(1)
	if tcp {
		s.udpN.Add(-1)
		n = s.tcpN.Add(1)
	}
	s.mu.Lock()
	s.log = append(s.log, Query{Msg: m.Copy(), TCP: tcp, From: w.RemoteAddr()})
	h := s.handler
	s.mu.Unlock()
	if h == nil {
		h = Answer
	}
	h(&Exchange{Req: m, TCP: tcp, N: int(n), srv: s, w: w})
}

// Answer is the default handler: the correct reply.
func Answer(x *Exchange) { x.Reply(x.Answer()) }

// Answer returns the correct reply to the query, from the test zones.
func (x *Exchange) Answer() *dns.Msg { return x.srv.zone.answer(x.Req) }

// Reply sends m as it is (no truncation to the client's buffer).
func (x *Exchange) Reply(m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		panic("dnstest: packing a reply: " + err.Error())
	}
	x.WriteRaw(b)
}

// WriteRaw sends b as the reply (over TCP with its length prefix).
func (x *Exchange) WriteRaw(b []byte) { x.w.Write(b) }

// ReplyFromOtherPort sends m to the client from another UDP port of the
// server's address: a forged source.
func (x *Exchange) ReplyFromOtherPort(m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		panic("dnstest: packing a reply: " + err.Error())
	}
	x.srv.other.WriteTo(b, x.w.RemoteAddr())
}

// Sleep waits for d, or less if the server is closing; it reports whether
// the whole delay passed.
func (x *Exchange) Sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-x.srv.stop:
		return false
	}
}

// Drop is a handler that never replies.
func Drop(*Exchange) {}

// Delay returns a handler that waits d and then runs h.
func Delay(d time.Duration, h Handler) Handler {
	return func(x *Exchange) {
		if x.Sleep(d) {
			h(x)
		}
	}
}

// Rcode returns a handler that replies with rcode and nothing else.
func Rcode(rcode int) Handler {
	return func(x *Exchange) {
		m := new(dns.Msg)
		m.SetRcode(x.Req, rcode)
		m.RecursionAvailable = true
		x.Reply(m)
	}
}

// Truncate is a handler that answers UDP queries with an empty truncated
// reply (TC set) and TCP queries correctly.
func Truncate(x *Exchange) {
	if x.TCP {
		Answer(x)
		return
	}
	m := x.Answer()
	m.Truncated = true
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	x.Reply(m)
}

// FormErrOnEDNS is a handler for a server that predates EDNS0: a query
// with an OPT record gets FORMERR without a question section; one without
// is answered.
func FormErrOnEDNS(x *Exchange) {
	if x.Req.IsEdns0() == nil {
		Answer(x)
		return
	}
	m := new(dns.Msg)
	m.Id = x.Req.Id
	m.Response = true
	m.Rcode = dns.RcodeFormatError
	x.Reply(m)
}

// Evil is the address forged replies give for every A record (and its
// IPv4-mapped form for AAAA): a test that gets it back was fooled.
var Evil = netip.MustParseAddr("203.0.113.66")

// Forged returns the correct reply to x's query with every address
// replaced by Evil.
func (x *Exchange) Forged() *dns.Msg {
	m := x.Answer()
	for i, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			c := *v
			c.A = net.IP(Evil.AsSlice())
			m.Answer[i] = &c
		case *dns.AAAA:
			c := *v
			c.AAAA = net.IP(netip.AddrFrom16(Evil.As16()).AsSlice())
			m.Answer[i] = &c
		}
	}
	return m
}

// WrongID sends a forged reply (see Forged) with another ID.
func WrongID(x *Exchange) {
	m := x.Forged()
	m.Id ^= 0x5a5a
	x.Reply(m)
}

// WrongQuestion sends a forged reply with the right ID for another name.
func WrongQuestion(x *Exchange) {
	m := x.Forged()
	m.Question[0].Name = "evil.other.test."
	x.Reply(m)
}

// WrongType sends a forged reply with the right ID and name but another
// type in its question (AAAA for A, A for anything else).
func WrongType(x *Exchange) {
	m := x.Forged()
	if m.Question[0].Qtype == dns.TypeA {
		m.Question[0].Qtype = dns.TypeAAAA
	} else {
		m.Question[0].Qtype = dns.TypeA
	}
	x.Reply(m)
}

// NotResponse sends the forged reply with the response (QR) bit clear.
func NotResponse(x *Exchange) {
	m := x.Forged()
	m.Response = false
	x.Reply(m)
}

// OtherSource sends a forged reply, right in every field, from another
// port of the server's address.
func OtherSource(x *Exchange) { x.ReplyFromOtherPort(x.Forged()) }

// Malformed sends bytes with the query's ID and the response bit but no
// valid message: a header that promises records which are not there.
func Malformed(x *Exchange) {
	b := []byte{byte(x.Req.Id >> 8), byte(x.Req.Id), 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0xff, 0xff}
	x.WriteRaw(b)
}

// ShortDatagram sends a datagram shorter than a DNS header.
func ShortDatagram(x *Exchange) { x.WriteRaw([]byte{byte(x.Req.Id >> 8), byte(x.Req.Id), 0x81}) }

// Oversized sends the correct reply padded with extra records to size
// bytes or more, larger than the client advertised.
func Oversized(size int) Handler {
	return func(x *Exchange) {
		m := x.Answer()
		for i := 0; m.Len() < size; i++ {
			rr, _ := dns.NewRR(x.Req.Question[0].Name + " 300 IN TXT \"" + strings.Repeat("x", 200) + "\"")
			m.Extra = append(m.Extra, rr)
		}
		x.Reply(m)
	}
}

// Then returns a handler that runs every handler of hs in turn for one
// query: Then(WrongID, Answer) sends a forged reply, then the genuine one.
func Then(hs ...Handler) Handler {
	return func(x *Exchange) {
		for _, h := range hs {
			h(x)
		}
	}
}

// Nth returns a handler that runs first for the first n queries of each
// transport and then for the rest.
func Nth(n int, first, then Handler) Handler {
	return func(x *Exchange) {
		if x.N <= n {
			first(x)
		} else {
			then(x)
		}
	}
}

// ForName returns a handler that runs h for queries of name (any case, with
// or without the trailing dot) and Answer for the others.
func ForName(name string, h Handler) Handler {
	name = dns.Fqdn(strings.ToLower(name))
	return func(x *Exchange) {
		if strings.ToLower(x.Req.Question[0].Name) == name {
			h(x)
		} else {
			Answer(x)
		}
	}
}

// listenBoth listens on one loopback port for UDP and TCP.
func listenBoth() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnstest: no port free for both UDP and TCP: %w", lastErr)
}
