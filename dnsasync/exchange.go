package dnsasync

import (
	"context"
	"net"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// Exchange sends m, which must hold exactly one question, through the same
// machinery as the lookups: the configured servers with failover and
// attempts, a fresh random ID for every try (on the UDP sockets the
// lookups use, or one of its own when m advertises a larger buffer than
// Config.UDPSize), EDNS0 (added
// when m has no OPT record; dropped again if a server answers FORMERR),
// and TCP when the reply is truncated. The cache, the hosts file and the
// search list are not used, and CNAME records are not followed.
//
// The reply carries m's ID. A reply is returned whatever its rcode: when
// every server failed (SERVFAIL, REFUSED...) it is the last one received.
// The error is a *net.DNSError when no server replied at all (IsTimeout
// if every try timed out) or ctx ended first. m is not modified.
func (r *Resolver) Exchange(ctx context.Context, m *dns.Msg) *fdpoll.Future[*dns.Msg] {
	if m == nil || len(m.Question) != 1 {
		return fdpoll.Failed[*dns.Msg](&net.DNSError{Err: errBadQuery})
	}
	return runLookup(r, ctx, m.Question[0].Name, func(ctx context.Context) (*dns.Msg, error) {
		return r.exchangeRaw(ctx, m)
	})
}
