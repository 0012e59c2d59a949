// Package dnstest starts DNS servers for yieldio's tests and benchmarks: a
// real NSD (authoritative) or Unbound (recursive, in front of NSD) on a
// loopback high port serving a static test zone, and an in-process
// miekg/dns server whose replies a test can drop, delay, truncate, forge or
// break.
package dnstest

// The test zones. Every real server and the fault server serve them, so
// tests can name what they expect. Addresses are from the documentation
// ranges (RFC 5737, RFC 3849).
var zones = map[string]string{
	"example.test.": `$ORIGIN example.test.
$TTL 300
@          IN SOA   ns1 hostmaster 1 3600 900 604800 60
@          IN NS    ns1
ns1        IN A     127.0.0.1
host       IN A     192.0.2.1
host       IN A     192.0.2.2
host       IN AAAA  2001:db8::1
host       IN AAAA  2001:db8::2
v4only     IN A     192.0.2.10
v6only     IN AAAA  2001:db8::10
www        IN CNAME host
alias2     IN CNAME www
ext        IN CNAME target.other.test.
loop1      IN CNAME loop2
loop2      IN CNAME loop1
short  10  IN A     192.0.2.20
_sip._tcp  IN SRV   10 60 5060 host
_sip._tcp  IN SRV   10 20 5061 v4only
_sip._tcp  IN SRV   20 0  5062 v6only
mail       IN MX    10 host
mail       IN MX    20 v4only
txt        IN TXT   "hello world"
txt        IN TXT   "part one " "part two"
*.wild     IN A     192.0.2.50
*.wild     IN AAAA  2001:db8::50
` + bigTXT(),
	"other.test.": `$ORIGIN other.test.
$TTL 300
@          IN SOA   ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60
@          IN NS    ns1.example.test.
target     IN A     192.0.2.100
target     IN AAAA  2001:db8::100
`,
	"2.0.192.in-addr.arpa.": `$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@          IN SOA   ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60
@          IN NS    ns1.example.test.
1          IN PTR   host.example.test.
10         IN PTR   v4only.example.test.
`,
}

// Names and records of the test zones, for tests to compare with.
const (
	// Host has two A and two AAAA records; WWW is a CNAME to it and Alias2
	// a CNAME to WWW.
	Host   = "host.example.test"
	WWW    = "www.example.test"
	Alias2 = "alias2.example.test"
	// External is a CNAME to ExternalTarget, in another zone: an
	// authoritative server answers with the CNAME alone.
	External       = "ext.example.test"
	ExternalTarget = "target.other.test"
	V4Only         = "v4only.example.test"
	V6Only         = "v6only.example.test"
	// Loop1 and Loop2 are CNAMEs to each other.
	Loop1 = "loop1.example.test"
	// Short has a TTL of 10 seconds.
	Short = "short.example.test"
	// SRV has three SRV records; Mail two MX; TXT two TXT records, one of
	// two strings; BigTXT enough TXT records that a UDP reply is
	// truncated.
	SRVName = "_sip._tcp.example.test"
	Mail    = "mail.example.test"
	TXT     = "txt.example.test"
	BigTXT  = "big.example.test"
	// Missing does not exist (NXDOMAIN); the zone's negative TTL is 60s.
	Missing = "missing.example.test"
	// Wild is the parent of a wildcard: any name under it has an A and an
	// AAAA record (192.0.2.50, 2001:db8::50).
	Wild = "wild.example.test"
	// HostReverse is an address with a PTR record to Host.
	HostReverse = "192.0.2.1"
	// NegativeTTL is the SOA minimum of the zones, in seconds.
	NegativeTTL = 60
)

// BigTXTCount is the number of TXT records of BigTXT.
const BigTXTCount = 40

func bigTXT() string {
	s := ""
	for i := range BigTXTCount {
		s += "big        IN TXT   \"record " + itoa(i) + " of the big TXT set, padded to make the reply longer than 1232 bytes\"\n"
	}
	return s
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
