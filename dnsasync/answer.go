package dnsasync

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// An answer is what the resolver learned about one name and record type:
// the records, or that there are none. Answers are shared by every lookup
// that asks the same question and by the cache, so they are never modified
// once made; lookups copy what they return.
type answer struct {
	name     string       // canonical name: the end of the CNAME chain, wire form ("host.example.")
	chained  bool         // a CNAME led from the name asked to name
	rrs      []dns.RR     // records of the type asked, owned by name
	addrs    []netip.Addr // rrs as addresses, for A and AAAA
	notFound bool         // NXDOMAIN, or no records of the type
	server   string       // the server that answered
	ttl      time.Duration
}

// A reading is a reply interpreted for one question.
type reading struct {
	ans   *answer // set unless the chain must be followed in another query
	chase string  // resolver-form name whose records the chain leads to
	chain []string
	ttl   uint32 // least TTL of the CNAME records followed
}

// interpret reads reply, a usable answer (NOERROR or NXDOMAIN) to a query
// for qname (resolver form) and qtype. It follows CNAME records in the
// answer section from qname, at most hops more of them, and fails on a
// loop; seen holds the names already met on the chain in earlier replies.
// Records that are not on the chain are ignored.
func (r *Resolver) interpret(reply *dns.Msg, qname string, qtype uint16, server string, seen []string, hops int) (reading, error) {
	rd := reading{chain: seen, ttl: ^uint32(0)}
	cur := qname
	if qtype != dns.TypeCNAME {
		for {
			next := ""
			for _, rr := range reply.Answer {
				h := rr.Header()
				if c, ok := rr.(*dns.CNAME); ok && h.Class == dns.ClassINET && sameName(h.Name, cur) {
					next = fromWire(c.Target)
					rd.ttl = min(rd.ttl, ttlValue(h.Ttl))
					break
				}
			}
			if next == "" {
				break
			}
			rd.chain = append(rd.chain, cur)
			if containsString(rd.chain, next) {
				return rd, serverError(errCNAMELoop, qname, server, false)
			}
			if hops--; hops < 0 {
				return rd, serverError(errCNAMETooLong, qname, server, false)
			}
			cur = next
		}
	}
	ans := &answer{name: fqdn(cur), chained: cur != qname, server: server}
	minTTL := rd.ttl
	for _, rr := range reply.Answer {
		h := rr.Header()
		if h.Rrtype != qtype || h.Class != dns.ClassINET || !sameName(h.Name, cur) {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			a, ok := netip.AddrFromSlice(v.A.To4())
			if !ok {
				continue
			}
			ans.addrs = append(ans.addrs, a)
		case *dns.AAAA:
			a, ok := netip.AddrFromSlice(v.AAAA.To16())
			if !ok {
				continue
			}
			ans.addrs = append(ans.addrs, a)
		}
		ans.rrs = append(ans.rrs, rr)
		minTTL = min(minTTL, ttlValue(h.Ttl))
	}
	switch {
	case len(ans.rrs) > 0:
		ans.ttl = r.positiveTTL(minTTL)
	case reply.Rcode == dns.RcodeSuccess && cur != qname && !hasSOA(reply.Ns):
		// The chain leaves what this server answered for (an
		// authoritative server outside its zone): ask for its end.
		rd.chase = cur
		return rd, nil
	default:
		ans.notFound = true
		ans.ttl = r.negativeTTL(reply, rd.ttl)
	}
	rd.ans = ans
	return rd, nil
}

// positiveTTL clamps a record TTL (seconds) to the configured bounds. A TTL
// of 0 means "do not cache" unless MinTTL says otherwise.
func (r *Resolver) positiveTTL(ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	return min(max(d, r.s.minTTL), r.s.maxTTL)
}

// negativeTTL is how long a negative reply may be cached (RFC 2308 section
// 5): the lesser of the SOA record's TTL and its MINIMUM field, capped by
// MaxNegativeTTL and by the CNAME records that led there. Without an SOA
// record it is not cached at all (0).
func (r *Resolver) negativeTTL(reply *dns.Msg, chainTTL uint32) time.Duration {
	for _, rr := range reply.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(ttlValue(soa.Hdr.Ttl), ttlValue(soa.Minttl), chainTTL)
			return min(time.Duration(ttl)*time.Second, r.s.maxNegTTL)
		}
	}
	return 0
}

// sameName compares a wire-form name with a resolver-form one.
func sameName(wire, name string) bool {
	wire = strings.TrimSuffix(wire, ".")
	return equalFoldASCII(wire, name)
}

// ttlValue reads a TTL field: a value with the top bit set counts as 0
// (RFC 2181 section 8), not as 68 years.
func ttlValue(ttl uint32) uint32 {
	if ttl >= 1<<31 {
		return 0
	}
	return ttl
}
