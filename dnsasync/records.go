package dnsasync

import (
	"cmp"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// LookupSRV returns the SRV records of _service._proto.name (of name itself
// when service and proto are both empty), ordered as RFC 2782 says: by
// priority, and at random weighted by weight within a priority.
func (r *Resolver) LookupSRV(ctx context.Context, service, proto, name string) *fdpoll.Future[[]*net.SRV] {
	target := name
	if service != "" || proto != "" {
		target = "_" + service + "._" + proto + "." + name
	}
	return callType(r, ctx, target, target, dns.TypeSRV, func(a *answer) ([]*net.SRV, error) {
		out := make([]*net.SRV, 0, len(a.rrs))
		for _, rr := range a.rrs {
			s := rr.(*dns.SRV)
			if s.Target != "." && checkName(fromWire(s.Target)) != nil {
				continue
			}
			out = append(out, &net.SRV{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
		}
		if len(out) == 0 {
			return nil, serverError(errMalformedRecords, target, a.server, false)
		}
		sortSRV(out)
		return out, nil
	})
}

// LookupMX returns the MX records of name, by preference (at random among
// equal preferences, as RFC 5321 section 5.1 asks).
func (r *Resolver) LookupMX(ctx context.Context, name string) *fdpoll.Future[[]*net.MX] {
	return callType(r, ctx, name, name, dns.TypeMX, func(a *answer) ([]*net.MX, error) {
		out := make([]*net.MX, 0, len(a.rrs))
		for _, rr := range a.rrs {
			mx := rr.(*dns.MX)
			if mx.Mx != "." && checkName(fromWire(mx.Mx)) != nil {
				continue
			}
			out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
		if len(out) == 0 {
			return nil, serverError(errMalformedRecords, name, a.server, false)
		}
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		slices.SortStableFunc(out, func(x, y *net.MX) int { return cmp.Compare(x.Pref, y.Pref) })
		return out, nil
	})
}

// LookupTXT returns the TXT records of name, each record's strings joined
// into one, as net.Resolver.LookupTXT does.
func (r *Resolver) LookupTXT(ctx context.Context, name string) *fdpoll.Future[[]string] {
	return callType(r, ctx, name, name, dns.TypeTXT, func(a *answer) ([]string, error) {
		out := make([]string, 0, len(a.rrs))
		for _, rr := range a.rrs {
			out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
		}
		return out, nil
	})
}

// LookupCNAME returns the canonical name of host: the name reached by
// following its CNAME records, or host itself (as an absolute name, with a
// trailing dot) when it has none but has addresses. As with
// net.Resolver.LookupCNAME, it asks for addresses (A and AAAA) and so
// shares their cache entries with LookupHost; a name with neither an
// address nor a CNAME record is not found. A name from the hosts file gets
// the first name of its line.
func (r *Resolver) LookupCNAME(ctx context.Context, host string) *fdpoll.Future[string] {
	name, rooted, err := normalize(host)
	if err != nil {
		return fdpoll.Failed[string](notFound(host, ""))
	}
	if canon := r.hosts.canonical(name, monoNow()); canon != "" {
		return fdpoll.Completed(fqdn(canon), nil)
	}
	if isLocalhost(name) {
		return fdpoll.Completed(fqdn(name), nil)
	}
	if as, ok := r.cached(name, rooted, typesIP[:], monoNow()); ok && hasCanonical(as) {
		canon, err := checkedCanonical(as, host)
		return fdpoll.Completed(canon, err)
	}
	return runLookup(r, ctx, host, func(ctx context.Context) (string, error) {
		as, err := r.lookupAnswers(ctx, host, name, rooted, typesIP[:], hasCanonical)
		if err != nil {
			return "", err
		}
		return checkedCanonical(as, host)
	})
}

// hasCanonical accepts a name with addresses or a CNAME record.
func hasCanonical(as answers) bool {
	for _, a := range as {
		if a != nil && (len(a.rrs) > 0 || a.chained) {
			return true
		}
	}
	return false
}

// checkedCanonical returns the canonical name of as, refusing one that is
// not a valid host name (a CNAME target is data from the network, and may
// end up in HTML or a shell; net.Resolver refuses such names too).
func checkedCanonical(as answers, host string) (string, error) {
	canon := canonicalOf(as)
	if checkName(strings.TrimSuffix(canon, ".")) != nil {
		return "", &net.DNSError{Err: errMalformedRecords, Name: host}
	}
	return canon, nil
}

func canonicalOf(as answers) string {
	for _, a := range as {
		if a != nil && len(a.rrs) > 0 {
			return a.name
		}
	}
	for _, a := range as {
		if a != nil && a.chained {
			return a.name
		}
	}
	return ""
}

// LookupAddr returns the names of addr (an IPv4 or IPv6 address in text
// form): those listed for it in the hosts file, or else its PTR records.
// Names are absolute, with a trailing dot.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) *fdpoll.Future[[]string] {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return fdpoll.Failed[[]string](&net.DNSError{Err: errInvalidAddress, Name: addr})
	}
	ip = ip.Unmap()
	if listed := r.hosts.lookupAddr(ip.WithZone(""), monoNow()); len(listed) > 0 {
		out := make([]string, len(listed))
		for i, n := range listed {
			out[i] = fqdn(n)
		}
		return fdpoll.Completed(out, nil)
	}
	arpa, err := dns.ReverseAddr(ip.WithZone("").String())
	if err != nil {
		return fdpoll.Failed[[]string](&net.DNSError{Err: errInvalidAddress, Name: addr})
	}
	return callType(r, ctx, arpa, addr, dns.TypePTR, func(a *answer) ([]string, error) {
		out := make([]string, 0, len(a.rrs))
		for _, rr := range a.rrs {
			p := rr.(*dns.PTR).Ptr
			if checkName(fromWire(p)) == nil {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, serverError(errMalformedRecords, addr, a.server, false)
		}
		return out, nil
	})
}

// sortSRV orders SRV records as RFC 2782 says.
func sortSRV(s []*net.SRV) {
	slices.SortStableFunc(s, func(x, y *net.SRV) int { return cmp.Compare(x.Priority, y.Priority) })
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j].Priority == s[i].Priority {
			j++
		}
		shuffleByWeight(s[i:j])
		i = j
	}
}

// shuffleByWeight orders records of one priority by repeated weighted
// random choice: a record of weight w is picked next with probability
// w / (sum of the remaining weights), zero weights having a small chance.
func shuffleByWeight(s []*net.SRV) {
	sum := 0
	for _, x := range s {
		sum += int(x.Weight)
	}
	for sum > 0 && len(s) > 1 {
		pick := rand.IntN(sum)
		acc := 0
		for i, x := range s {
			acc += int(x.Weight)
			if pick < acc {
				s[0], s[i] = s[i], s[0]
				break
			}
		}
		sum -= int(s[0].Weight)
		s = s[1:]
	}
}
