package dnsasync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// newQuery returns a recursive query for name (resolver form) and qtype,
// advertising EDNS0 with the configured buffer size.
func (r *Resolver) newQuery(name string, qtype uint16) *dns.Msg {
	q := &dns.Msg{
		MsgHdr:   dns.MsgHdr{RecursionDesired: true, Opcode: dns.OpcodeQuery},
		Question: []dns.Question{{Name: fqdn(name), Qtype: qtype, Qclass: dns.ClassINET}},
	}
	q.SetEdns0(uint16(r.s.udpSize), false)
	return q
}

// exchange sends q to the servers until one gives a usable reply: for each
// attempt, each server in turn (from a rotating start with Rotate). A
// server that times out, cannot be reached, fails (SERVFAIL), refuses or
// answers nonsense is passed over. It must run in a task.
//
// It returns the usable reply and the server that gave it; otherwise an
// error describing the failure, with the last unusable reply if any server
// answered at all (Exchange hands that to its caller). The tries end as
// soon as ctx does.
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, string, error) {
	s := r.s
	c := call{ctx: ctx, l: fdpoll.LoopOf(ctx)}
	name := fromWire(q.Question[0].Name)
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	wire, err := q.PackBuffer(*bp)
	if err != nil {
		return nil, "", &net.DNSError{Err: "cannot pack query: " + err.Error(), Name: name}
	}
	maxSize := 512
	if opt := q.IsEdns0(); opt != nil {
		maxSize = max(int(opt.UDPSize()), 512)
	}
	n := len(s.servers)
	start := 0
	if s.rotate {
		start = int(r.rotor.Add(1) % uint32(n))
	}
	var (
		lastReply *dns.Msg
		lastErr   *net.DNSError
		servfail  *net.DNSError
		// The last failure that was not a timeout: reported unless every
		// try timed out.
		lastNonTimeout *net.DNSError
		allTimeout     = true
	)
	for range s.attempts {
		for i := range n {
			server := s.servers[(start+i)%n]
			reply, err := r.tryServer(c, server, q, wire, maxSize)
			if err != nil {
				if cerr := ctxDone(ctx); cerr != nil {
					return nil, server, contextError(cerr, name)
				}
				if isTimeout(err) {
					lastErr = timeoutError(name, server)
				} else {
					allTimeout = false
					lastErr = serverError(errNoServerReachable+": "+err.Error(), name, server, true)
					lastNonTimeout = lastErr
				}
				continue
			}
			allTimeout = false
			failure := classify(reply, name, server)
			if failure == nil {
				return reply, server, nil
			}
			lastReply, lastErr, lastNonTimeout = reply, failure, failure
			if reply.Rcode == dns.RcodeServerFailure {
				servfail = failure
			}
		}
	}
	switch {
	case allTimeout:
	case servfail != nil:
		lastErr = servfail
	case lastNonTimeout != nil:
		// Not every try timed out: report what the servers said.
		lastErr = lastNonTimeout
	}
	return lastReply, "", lastErr
}

// tryServer makes one try of one server: over UDP, again without EDNS0 if
// the server answers FORMERR to it, and over TCP if the reply is truncated.
func (r *Resolver) tryServer(c call, server string, q *dns.Msg, wire []byte, maxSize int) (*dns.Msg, error) {
	r.setID(q, wire)
	if r.s.useTCP {
		return r.exchangeTCP(c, server, q, wire, r.deadline(c.ctx))
	}
	reply, err := r.exchangeUDP(c, server, q, wire, maxSize, r.deadline(c.ctx))
	if err != nil {
		return nil, err
	}
	if reply.Rcode == dns.RcodeFormatError && q.IsEdns0() != nil {
		// RFC 6891 section 7: a server that does not know EDNS0 answers
		// FORMERR; ask again the old way.
		plain := q.Copy()
		plain.Extra = withoutOPT(plain.Extra)
		pw, err := plain.Pack()
		if err != nil {
			return nil, err
		}
		r.setID(plain, pw)
		if reply, err = r.exchangeUDP(c, server, plain, pw, 512, r.deadline(c.ctx)); err != nil {
			return nil, err
		}
		q, wire = plain, pw
	}
	if reply.Truncated {
		r.setID(q, wire)
		return r.exchangeTCP(c, server, q, wire, r.deadline(c.ctx))
	}
	return reply, nil
}

// A call is the context of the tries of one exchange: who asks (ctx, the
// context of a task on loop l).
type call struct {
	ctx context.Context
	l   *fdpoll.Loop
}

// deadline returns the deadline of a try starting now.
func (r *Resolver) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(r.s.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// classify returns nil for a usable reply (NOERROR or NXDOMAIN from a
// server that knows the answer), otherwise the error it stands for.
func classify(reply *dns.Msg, name, server string) *net.DNSError {
	switch reply.Rcode {
	case dns.RcodeSuccess:
		if !reply.Authoritative && !reply.RecursionAvailable && len(reply.Answer) == 0 && !hasSOA(reply.Ns) {
			// A server that neither knows the name nor recurses: a
			// referral, which a stub resolver cannot follow.
			return serverError(errLameReferral, name, server, false)
		}
		return nil
	case dns.RcodeNameError:
		return nil
	case dns.RcodeServerFailure:
		return serverError(errServerFailure, name, server, true)
	case dns.RcodeRefused:
		return serverError(errServerRefused, name, server, false)
	case dns.RcodeFormatError:
		return serverError(errFormat, name, server, false)
	}
	return serverError(errServerMisbehaving+" ("+dns.RcodeToString[reply.Rcode]+")", name, server, false)
}

func hasSOA(rrs []dns.RR) bool {
	for _, rr := range rrs {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}

func withoutOPT(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if _, ok := rr.(*dns.OPT); !ok {
			out = append(out, rr)
		}
	}
	return out
}

func isTimeout(err error) bool {
	return errors.Is(err, errTryTimeout) || errors.Is(err, os.ErrDeadlineExceeded)
}

// setID gives q, and its packed form wire, a fresh random ID: every try
// gets its own, so a reply to an earlier one is not taken for this one.
func (r *Resolver) setID(q *dns.Msg, wire []byte) {
	id := r.ids.next()
	q.Id = id
	binary.BigEndian.PutUint16(wire, id)
}

// An idSource hands out query IDs from crypto/rand, read in blocks: one
// read of the kernel's generator serves 256 queries.
type idSource struct {
	mu  sync.Mutex
	buf [512]byte
	off int // next unused byte; 0 in a new source means "refill"
	ok  bool
}

func (s *idSource) next() uint16 {
	s.mu.Lock()
	if !s.ok || s.off == len(s.buf) {
		rand.Read(s.buf[:]) // never fails (crypto/rand, Go 1.24+)
		s.off, s.ok = 0, true
	}
	id := binary.BigEndian.Uint16(s.buf[s.off:])
	s.off += 2
	s.mu.Unlock()
	return id
}
