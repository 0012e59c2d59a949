package dnsasync

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// One try of one server: send the query, wait for its reply until the
// deadline. Over UDP the socket is connected (the kernel drops datagrams
// from any address or port but the server's) and has a random source port;
// it may be shared by the loop's other queries to the same server (see
// udpsocket.go). What does arrive is checked before it is believed: a
// datagram that is larger than the buffer advertised, too short, not a
// response, of an ID no query waits for, unparsable, or that answers
// another question is dropped, and the query keeps waiting until its
// deadline.

// aLongTimeAgo is a deadline in the past: setting it wakes a waiting Read.
var aLongTimeAgo = time.Unix(1, 0)

// errBadTCPReply is a TCP reply that does not answer the query.
var errBadTCPReply = errors.New("reply does not match the query")

// dropReason says why a datagram was dropped; tests count them.
type dropReason int

const (
	dropOversized dropReason = iota
	dropShort
	dropID
	dropMalformed
	dropQuestion
	numDropReasons
)

// checkDatagram parses b as the reply to q, or says why it is not one.
func checkDatagram(q *dns.Msg, b []byte, maxSize int) (*dns.Msg, dropReason) {
	switch {
	case len(b) > maxSize:
		return nil, dropOversized
	case len(b) < 12:
		return nil, dropShort
	case binary.BigEndian.Uint16(b) != q.Id || b[2]&0x80 == 0:
		return nil, dropID
	}
	reply := new(dns.Msg)
	if err := reply.Unpack(b); err != nil {
		return nil, dropMalformed
	}
	if !answersQuestion(q, reply) {
		return nil, dropQuestion
	}
	return reply, 0
}

// answersQuestion reports whether reply is a response to q: same ID and
// opcode, and the same single question (name compared without regard to
// case, type, class). A FORMERR may come without a question: a server that
// does not know EDNS is not required to echo it (RFC 6891 section 7).
func answersQuestion(q, reply *dns.Msg) bool {
	if !reply.Response || reply.Id != q.Id || reply.Opcode != q.Opcode {
		return false
	}
	if len(reply.Question) == 0 {
		return reply.Rcode == dns.RcodeFormatError
	}
	if len(reply.Question) != 1 {
		return false
	}
	a, b := q.Question[0], reply.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && equalFoldASCII(a.Name, b.Name)
}

// exchangeTCP sends q over a new TCP connection to server and reads one
// length-prefixed reply.
func (r *Resolver) exchangeTCP(cl call, server string, q *dns.Msg, wire []byte, deadline time.Time) (*dns.Msg, error) {
	ctx := cl.ctx
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := dial(dctx, cl.l, "tcp", server)
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			return nil, errTryTimeout
		}
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := c.Write(out); err != nil {
		return nil, ctxOr(ctx, err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, ctxOr(ctx, err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < 12 {
		return nil, errBadTCPReply
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, ctxOr(ctx, err)
	}
	reply := new(dns.Msg)
	if err := reply.Unpack(body); err != nil {
		return nil, errBadTCPReply
	}
	if !answersQuestion(q, reply) {
		return nil, errBadTCPReply
	}
	return reply, nil
}

// errTryTimeout is a try that reached its deadline.
var errTryTimeout = errors.New("try timed out")

// dial connects from loop l. If ctx ends before the connection is made,
// the connection that the dial still produces is closed, not leaked.
func dial(ctx context.Context, l *fdpoll.Loop, network, server string) (*fdpoll.Conn, error) {
	f := l.Dial(ctx, network, server)
	c, err := fdpoll.Await(ctx, f)
	if err != nil {
		// Whether or not the dial finished meanwhile, a connection it made
		// is closed.
		f.OnComplete(func(c *fdpoll.Conn, _ error) {
			if c != nil {
				c.Close()
			}
		})
	}
	return c, err
}

// ctxOr returns ctx's error if ctx is done (it is why a wait was cut
// short), otherwise err.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctxDone(ctx); cerr != nil {
		return cerr
	}
	return err
}

// ctxDone returns ctx's error, or context.DeadlineExceeded once ctx's
// deadline has passed even if its timer has not fired yet: a try whose
// deadline was ctx's then reports ctx's end, not its own timeout.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
