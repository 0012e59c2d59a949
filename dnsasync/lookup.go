package dnsasync

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// Record types asked for each network of LookupNetIP. Read-only.
var (
	typesIP  = [2]uint16{dns.TypeA, dns.TypeAAAA}
	typesIP4 = [1]uint16{dns.TypeA}
	typesIP6 = [1]uint16{dns.TypeAAAA}
)

// answers holds the answers for one name, one per record type asked (A
// and AAAA for an address lookup).
type answers [2]*answer

// LookupHost returns the IPv4 and IPv6 addresses of host, asking for A and
// AAAA records in parallel: IPv4 addresses first, then IPv6, each in the
// order the server gave. An IP literal is returned as it is, a name listed
// in the hosts file gets the addresses listed there, and "localhost" (and
// any name under it) gets 127.0.0.1 and ::1 (RFC 6761), all without a
// query. Other names go through the search list, the cache and the servers.
//
// A lookup answered from the cache completes at once and costs one
// allocation, which holds both the future and its slice (two allocations
// beyond four addresses). The slice is the caller's to keep or modify.
func (r *Resolver) LookupHost(ctx context.Context, host string) *fdpoll.Future[[]netip.Addr] {
	return r.lookupIP(ctx, host, typesIP[:])
}

// LookupNetIP is LookupHost restricted to one address family: network is
// "ip" (both), "ip4" (A records only) or "ip6" (AAAA records only), as for
// net.Resolver.LookupNetIP.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) *fdpoll.Future[[]netip.Addr] {
	switch network {
	case "ip":
		return r.lookupIP(ctx, host, typesIP[:])
	case "ip4":
		return r.lookupIP(ctx, host, typesIP4[:])
	case "ip6":
		return r.lookupIP(ctx, host, typesIP6[:])
	}
	return fdpoll.Failed[[]netip.Addr](&net.DNSError{Err: errBadNetwork + " " + network, Name: host})
}

func (r *Resolver) lookupIP(ctx context.Context, host string, qtypes []uint16) *fdpoll.Future[[]netip.Addr] {
	if ip, ok := parseIP(host); ok {
		if out := filterFamily([]netip.Addr{ip}, qtypes); len(out) > 0 {
			return fdpoll.Completed(out, nil)
		}
		return fdpoll.Failed[[]netip.Addr](&net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true})
	}
	name, rooted, err := normalize(host)
	if err != nil {
		return fdpoll.Failed[[]netip.Addr](notFound(host, ""))
	}
	now, h := coarseNow(), hashName(name)
	if listed := r.hosts.lookup(name, h, now); len(listed) > 0 {
		if out := filterFamily(listed, qtypes); len(out) > 0 {
			return fdpoll.Completed(out, nil)
		}
	}
	if isLocalhost(name) {
		loop := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
		return fdpoll.Completed(filterFamily(loop, qtypes), nil)
	}
	if as, ok := r.cachedHashed(name, h, rooted, qtypes, now); ok {
		return completedIPs(host, as, qtypes)
	}
	return runLookup(r, ctx, host, func(ctx context.Context) ([]netip.Addr, error) {
		as, err := r.lookupAnswers(ctx, host, name, rooted, qtypes, hasRecords)
		if err != nil {
			return nil, err
		}
		return ipResult(host, as, qtypes)
	})
}

// ipFuture1, ipFuture2 and ipFuture4 are a completed lookup with room for
// its addresses in the same allocation, of the smallest size that holds
// them: a cached lookup of up to four addresses allocates once, and the
// common one of two addresses (an A and an AAAA record) allocates 112
// bytes rather than 160, which is less work for the collector too.
type (
	ipFuture1 struct {
		f   fdpoll.Future[[]netip.Addr]
		buf [1]netip.Addr
	}
	ipFuture2 struct {
		f   fdpoll.Future[[]netip.Addr]
		buf [2]netip.Addr
	}
	ipFuture4 struct {
		f   fdpoll.Future[[]netip.Addr]
		buf [4]netip.Addr
	}
)

// completedIPs returns a completed future of the addresses of as.
func completedIPs(host string, as answers, qtypes []uint16) *fdpoll.Future[[]netip.Addr] {
	n := 0
	for i := range qtypes {
		n += len(as[i].addrs)
	}
	var (
		f   *fdpoll.Future[[]netip.Addr]
		out []netip.Addr
	)
	switch {
	case n == 1:
		r := new(ipFuture1)
		f, out = &r.f, r.buf[:0:n]
	case n == 2:
		r := new(ipFuture2)
		f, out = &r.f, r.buf[:0:n]
	case n == 3 || n == 4:
		r := new(ipFuture4)
		f, out = &r.f, r.buf[:0:n]
	default:
		return fdpoll.Completed(ipResult(host, as, qtypes))
	}
	for i := range qtypes {
		out = append(out, as[i].addrs...)
	}
	f.Complete(out, nil)
	return f
}

// ipResult returns the addresses of as in a new slice.
func ipResult(host string, as answers, qtypes []uint16) ([]netip.Addr, error) {
	n := 0
	for i := range qtypes {
		n += len(as[i].addrs)
	}
	if n == 0 {
		return nil, notFound(host, as[0].server)
	}
	out := make([]netip.Addr, 0, n)
	for i := range qtypes {
		out = append(out, as[i].addrs...)
	}
	return out, nil
}

func filterFamily(addrs []netip.Addr, qtypes []uint16) []netip.Addr {
	want4, want6 := false, false
	for _, t := range qtypes {
		want4 = want4 || t == dns.TypeA
		want6 = want6 || t == dns.TypeAAAA
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if (a.Is4() && want4) || (a.Is6() && want6) {
			out = append(out, a)
		}
	}
	return out
}

// hasRecords accepts the answers of a name that has records of a type
// asked.
func hasRecords(as answers) bool {
	for _, a := range as {
		if a != nil && len(a.rrs) > 0 {
			return true
		}
	}
	return false
}

// cached returns the answers for name from the cache when the lookup can
// be decided by them alone: name is the first name to try and every type
// asked is cached, with records for at least one type or, when there is no
// other name to try, none for all of them. It never allocates or locks.
// now may be coarseNow's.
func (r *Resolver) cached(name string, rooted bool, qtypes []uint16, now int64) (answers, bool) {
	return r.cachedHashed(name, hashName(name), rooted, qtypes, now)
}

// cachedHashed is cached for a name whose hashName is h.
func (r *Resolver) cachedHashed(name string, h uint64, rooted bool, qtypes []uint16, now int64) (answers, bool) {
	var as answers
	if !r.s.asIsFirst(name, rooted) {
		return as, false
	}
	if !r.cache.getAll(name, h, qtypes, now, &as) {
		return as, false
	}
	only := rooted || len(r.s.search) == 0
	return as, only || hasRecords(as)
}

// lookupAnswers resolves name for every type in qtypes (in parallel), for
// each name of the search list in turn, and returns the answers for the
// first name that accept takes. If none does, the error is the first
// failure other than "not found" (a timeout, a server failure), so that a
// broken server is not reported as a missing name; otherwise not found.
// It runs in a task.
func (r *Resolver) lookupAnswers(ctx context.Context, host, name string, rooted bool, qtypes []uint16, accept func(answers) bool) (answers, error) {
	l := fdpoll.LoopOf(ctx)
	var (
		failure error
		server  string
	)
	for _, cand := range r.s.candidates(name, rooted) {
		var (
			as   answers
			futs [2]*fdpoll.Future[*answer]
			now  = monoNow()
		)
		for i, t := range qtypes {
			as[i], futs[i] = r.resolve(l, cacheKey{cand, t}, now)
		}
		for i := range qtypes {
			if futs[i] == nil {
				continue
			}
			a, err := fdpoll.Await(ctx, futs[i])
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return as, contextError(cerr, host)
				}
				if failure == nil {
					failure = err
				}
				a = nil
			}
			as[i] = a
		}
		if accept(as) {
			for i := range qtypes {
				if as[i] == nil {
					// The other type failed: keep what was found.
					as[i] = &answer{notFound: true}
				}
			}
			return as, nil
		}
		for _, a := range as {
			if a != nil && server == "" {
				server = a.server
			}
		}
	}
	if failure != nil {
		return answers{}, asDNSError(failure, host)
	}
	return answers{}, notFound(host, server)
}

// callType looks up the records of one type for host and converts them
// into T with fn: at once from the cache, or in a task. Errors name
// errName (what the caller asked for).
func callType[T any](r *Resolver, ctx context.Context, host, errName string, qtype uint16, fn func(*answer) (T, error)) *fdpoll.Future[T] {
	name, rooted, err := normalize(host)
	if err != nil || isLocalhost(name) {
		// RFC 6761 section 6.3: localhost names have no records but
		// addresses.
		return fdpoll.Failed[T](notFound(errName, ""))
	}
	qtypes := [1]uint16{qtype}
	if as, ok := r.cached(name, rooted, qtypes[:], coarseNow()); ok {
		if !hasRecords(as) {
			return fdpoll.Failed[T](notFound(errName, as[0].server))
		}
		return fdpoll.Completed(fn(as[0]))
	}
	return runLookup(r, ctx, errName, func(ctx context.Context) (T, error) {
		as, err := r.lookupAnswers(ctx, errName, name, rooted, qtypes[:], hasRecords)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(as[0])
	})
}

// parseIP parses host as an IP literal. Names are recognised without
// calling netip.ParseAddr, whose error for a name costs an allocation: an
// IP literal has a colon or consists of digits and dots (no top-level
// domain is numeric).
func parseIP(host string) (netip.Addr, bool) {
	if host == "" {
		return netip.Addr{}, false
	}
	// An IPv6 literal has a colon; anything else that is not all digits
	// and dots is a name, which its first letter usually shows.
	if strings.IndexByte(host, ':') < 0 {
		for i := 0; i < len(host); i++ {
			if byteClass[host[i]]&(classDigit|classDot) == 0 {
				return netip.Addr{}, false
			}
		}
	}
	ip, err := netip.ParseAddr(host)
	return ip, err == nil
}
