package dnstest

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// zoneData is the test zones in memory, for the fault server's answers.
type zoneData struct {
	rrs  map[string][]dns.RR // by lower-case owner name, fully qualified
	soas map[string]*dns.SOA // by origin
}

func loadZones() (*zoneData, error) {
	zd := &zoneData{rrs: make(map[string][]dns.RR), soas: make(map[string]*dns.SOA)}
	for origin, text := range zones {
		zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			name := strings.ToLower(rr.Header().Name)
			zd.rrs[name] = append(zd.rrs[name], rr)
			if soa, ok := rr.(*dns.SOA); ok {
				zd.soas[origin] = soa
			}
		}
		if err := zp.Err(); err != nil {
			return nil, fmt.Errorf("dnstest: zone %s: %w", origin, err)
		}
	}
	return zd, nil
}

// zoneOf returns the origin of the zone name belongs to, or "".
func (zd *zoneData) zoneOf(name string) string {
	best := ""
	for origin := range zd.soas {
		if dns.IsSubDomain(origin, name) && len(origin) > len(best) {
			best = origin
		}
	}
	return best
}

// lookup returns the records owned by name, expanding the zones' wildcards.
func (zd *zoneData) lookup(name string) []dns.RR {
	if rrs := zd.rrs[name]; rrs != nil {
		return rrs
	}
	labels := dns.SplitDomainName(name)
	for i := 1; i < len(labels); i++ {
		wild := "*." + strings.Join(labels[i:], ".") + "."
		if rrs := zd.rrs[wild]; rrs != nil {
			out := make([]dns.RR, len(rrs))
			for j, rr := range rrs {
				out[j] = dns.Copy(rr)
				out[j].Header().Name = name
			}
			return out
		}
	}
	return nil
}

// answer replies to q like a recursive server: RA set, CNAME chains
// followed within the test zones, NXDOMAIN and NODATA with the zone's SOA.
func (zd *zoneData) answer(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(1232, false)
	}
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	qt := q.Question[0].Qtype
	cur := strings.ToLower(q.Question[0].Name)
	seen := map[string]bool{}
	for range 16 {
		zone := zd.zoneOf(cur)
		if zone == "" {
			return m // a name outside the test zones: a chain ends here
		}
		rrs := zd.lookup(cur)
		if rrs == nil {
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{zd.soas[zone]}
			return m
		}
		next := ""
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok && qt != dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
				next = strings.ToLower(c.Target)
			}
		}
		if next == "" {
			for _, rr := range rrs {
				if rr.Header().Rrtype == qt {
					m.Answer = append(m.Answer, rr)
				}
			}
			if len(m.Answer) == 0 {
				m.Ns = []dns.RR{zd.soas[zone]}
			}
			return m
		}
		if seen[next] {
			return m
		}
		seen[cur] = true
		cur = next
	}
	return m
}
