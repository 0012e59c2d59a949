package dnsasync

import (
	"context"
	"encoding/binary"
	"errors"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// Shared UDP sockets. Queries that a loop has in flight to one server at
// the same time share one connected UDP socket, as in c-ares: a lookup's
// A and AAAA queries, and under load hundreds of lookups, pay for one
// socket, connect, poller registration and close between them instead of
// one each, and one wake-up of the socket's reader collects every reply
// that has arrived. Replies are matched to queries by ID (an ID is never
// in use twice on one socket) and then by question, as before.
//
// Against spoofing, a socket still has a random source port from the
// kernel and accepts datagrams from its server only; it carries at most
// Config.UDPQueriesPerSocket queries before a new socket (a new port)
// takes over, and it is closed as soon as no query is waiting on it, so
// an idle resolver holds no socket and a port lives only while queries
// keep it busy.

// A udpSocket is a connected UDP socket to one server, owned by one loop
// and touched only by that loop's tasks (no lock).
type udpSocket struct {
	// dialed completes with the socket. It is shared from the start, so
	// that the queries arriving while it is being made wait for it rather
	// than each making their own.
	dialed *fdpoll.Future[*fdpoll.Conn]
	owner  *udpSockets
	server string
	// waiting maps an ID to the query awaiting its reply.
	waiting map[uint16]*udpQuery
	bufSize int  // the reader's buffer: one byte more than any reply allowed
	users   int  // exchanges using the socket: it closes when none is left
	sent    int  // exchanges that have used it
	retired bool // no new query may use it
	closed  bool
	broken  error // why the socket failed: no query may use it
}

// A udpQuery is one query waiting on a udpSocket for its reply.
type udpQuery struct {
	q       *dns.Msg
	maxSize int
	reply   fdpoll.Future[*dns.Msg]
}

// udpSockets are one loop's shared sockets, by server.
type udpSockets struct {
	byServer map[string]*udpSocket
}

// loopSockets returns loop l's shared sockets, or nil when l is not a loop
// of the resolver's group (a query is then given a socket of its own).
func (r *Resolver) loopSockets(l *fdpoll.Loop) *udpSockets {
	g := r.group()
	if l == nil || l.Group() != g {
		return nil
	}
	r.udpOnce.Do(func() { r.udp = make([]udpSockets, g.Len()) })
	return &r.udp[l.Index()]
}

// acquireUDP returns the socket a query to server from cl's loop goes out
// on, and its connection: the loop's shared one if it may take another
// query, else a new one. Unless it fails, the caller must release the
// socket when its try is over.
func (r *Resolver) acquireUDP(cl call, server string, maxSize int) (*udpSocket, *fdpoll.Conn, error) {
	ls := r.loopSockets(cl.l)
	if maxSize > r.s.udpSize {
		// A raw Exchange advertising a larger buffer than the resolver's:
		// a socket of its own, whose reader can take such a reply.
		ls = nil
	}
	var s *udpSocket
	if ls != nil {
		s = ls.byServer[server]
	}
	if s == nil {
		s = &udpSocket{
			// Not bound to the caller's context: the socket serves
			// others too (and connecting a UDP socket does not wait).
			dialed:  cl.l.Dial(context.Background(), "udp", server),
			server:  server,
			waiting: make(map[uint16]*udpQuery),
			bufSize: max(r.s.udpSize, maxSize) + 1,
		}
		if ls != nil {
			if ls.byServer == nil {
				ls.byServer = make(map[string]*udpSocket)
			}
			ls.byServer[server] = s
			s.owner = ls
		} else {
			s.retired = true
		}
		cl.l.Spawn(context.Background(), s.readReplies(r))
	}
	s.users++
	// Counted now, not when sent: the queries that arrive while the
	// socket is being made must not all pile onto it.
	s.sent++
	if s.sent >= r.s.udpQueriesPerSocket {
		s.retire()
	}
	c, err := fdpoll.Await(cl.ctx, s.dialed)
	if err != nil {
		if s.dialed.Done() {
			s.retire() // the dial failed: the next query tries anew
		}
		s.release()
		return nil, nil, err
	}
	return s, c, nil
}

// send registers q (packed as wire, advertising maxSize) as waiting on s,
// under an ID no other query on s has, and sends it.
func (s *udpSocket) send(r *Resolver, c *fdpoll.Conn, q *dns.Msg, wire []byte, maxSize int) (*udpQuery, error) {
	if s.broken != nil {
		return nil, s.broken // nobody would read the reply
	}
	for s.waiting[q.Id] != nil {
		r.setID(q, wire)
	}
	uq := &udpQuery{q: q, maxSize: maxSize}
	s.waiting[q.Id] = uq
	if _, err := c.Write(wire); err != nil {
		if socketError(err) {
			// The ICMP error an earlier query to the server caused (port
			// or host unreachable) shows in the next send or read, once:
			// here, and not to the reader. It concerns every query on
			// the socket.
			s.fail(err)
		} else {
			// This datagram's own failure (too large, no buffer space, a
			// firewall rule): the other queries go on.
			s.forget(q.Id, uq)
		}
		return nil, err
	}
	return uq, nil
}

// socketError reports whether err, from a send on a connected UDP socket,
// is an error the socket stored from an ICMP message, which concerns every
// datagram sent to the server rather than the one being sent.
func socketError(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
}

// fail ends every query waiting on s with err, and s with them.
func (s *udpSocket) fail(err error) {
	if s.broken == nil {
		s.broken = err
	}
	s.retire()
	for id, uq := range s.waiting {
		delete(s.waiting, id)
		uq.reply.Complete(nil, err)
	}
}

// forget stops waiting for the reply to uq.
func (s *udpSocket) forget(id uint16, uq *udpQuery) {
	if s.waiting[id] == uq {
		delete(s.waiting, id)
	}
}

// retire takes s out of sharing: queries that are waiting keep it open.
func (s *udpSocket) retire() {
	if s.retired {
		return
	}
	s.retired = true
	if s.owner != nil && s.owner.byServer[s.server] == s {
		delete(s.owner.byServer, s.server)
	}
}

// release ends one exchange's use of s; the last one closes it.
func (s *udpSocket) release() {
	s.users--
	if s.users > 0 {
		return
	}
	s.retire()
	s.close()
}

// close closes the socket, now if it is made, else as soon as it is (by
// its reader, which ends either way).
func (s *udpSocket) close() {
	if s.closed {
		return
	}
	s.closed = true
	if c, _ := s.dialed.Result(); c != nil {
		c.Close() // wakes the reader
	}
}

// readReplies returns s's reader: a task that reads every datagram that
// arrives and hands the one that answers a waiting query to it. What does
// not answer one is dropped and counted. A read error (an ICMP "port
// unreachable" shows as ECONNREFUSED) fails every query waiting on s.
func (s *udpSocket) readReplies(r *Resolver) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := fdpoll.Await(ctx, s.dialed)
		if err != nil {
			return nil // the queries waiting for the dial fail with err
		}
		if s.closed {
			// Every query gave up before the socket was made.
			c.Close()
			return nil
		}
		bp := r.bufs.Get().(*[]byte)
		defer r.bufs.Put(bp)
		buf := *bp
		if len(buf) < s.bufSize {
			buf = make([]byte, s.bufSize)
		}
		for {
			n, err := c.Read(buf)
			if err != nil {
				if !s.closed {
					s.fail(err)
				}
				return nil
			}
			s.deliver(r, buf[:n])
		}
	}
}

// deliver hands datagram b to the query it answers, or drops it.
func (s *udpSocket) deliver(r *Resolver, b []byte) {
	if len(b) < 12 {
		r.drops[dropShort].Add(1)
		return
	}
	id := binary.BigEndian.Uint16(b)
	uq := s.waiting[id]
	if uq == nil {
		r.drops[dropID].Add(1)
		return
	}
	reply, why := checkDatagram(uq.q, b, uq.maxSize)
	if reply == nil {
		r.drops[why].Add(1)
		return
	}
	delete(s.waiting, id)
	uq.reply.Complete(reply, nil)
}

// exchangeUDP sends wire (q packed) to server from cl's loop and returns
// the first datagram that answers q, or an error when the deadline, or
// cl's context, ends first. maxSize is the size q advertises.
func (r *Resolver) exchangeUDP(cl call, server string, q *dns.Msg, wire []byte, maxSize int, deadline time.Time) (*dns.Msg, error) {
	s, c, err := r.acquireUDP(cl, server, maxSize)
	if err != nil {
		return nil, ctxOr(cl.ctx, err)
	}
	defer s.release()
	uq, err := s.send(r, c, q, wire, maxSize)
	if err != nil {
		return nil, ctxOr(cl.ctx, err)
	}
	defer s.forget(q.Id, uq)
	t := cl.l.AfterFunc(time.Until(deadline), func() { uq.reply.Complete(nil, errTryTimeout) })
	defer t.Stop()
	reply, err := fdpoll.Await(cl.ctx, &uq.reply)
	if err != nil {
		return nil, ctxOr(cl.ctx, err)
	}
	return reply, nil
}
