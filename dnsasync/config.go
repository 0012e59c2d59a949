package dnsasync

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// Defaults used for zero fields of a Config, and by NewResolver(nil) when
// /etc/resolv.conf does not set them.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultAttempts       = 2
	DefaultCacheSize      = 10000
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxNegativeTTL = time.Hour
	// DefaultUDPSize is the EDNS0 buffer size advertised in queries: 1232
	// bytes fits an IPv6 packet on any path without fragmentation (the
	// figure agreed on by DNS Flag Day 2020).
	DefaultUDPSize = 1232
	// DefaultUDPQueriesPerSocket is how many queries one shared UDP
	// socket carries before a new socket, with a new random source port,
	// takes over.
	DefaultUDPQueriesPerSocket = 64
	// MaxCNAMEHops bounds how many CNAME records a lookup follows from the
	// name asked to the name that holds the records.
	MaxCNAMEHops = 16
)

// Config configures a Resolver. Zero fields take the defaults above;
// ConfigFromFile fills one from a resolv.conf(5) file.
type Config struct {
	// Servers are the name servers, as numeric "ip:port" ("[::1]:53") or a
	// bare IP (port 53). They are tried in order for each attempt, or
	// starting at a rotating position when Rotate is set.
	Servers []string
	// Search lists the domains appended to a name with fewer than Ndots
	// dots (tried before the name itself) or to a name that does not
	// resolve as given. A name ending in a dot is never searched.
	Search []string
	// Ndots is the number of dots a name needs to be tried as given before
	// the search list; 0 (the zero value) always tries it first.
	Ndots int
	// Attempts is how many times every server is tried before a query
	// fails (default 2).
	Attempts int
	// Timeout bounds each try of one server (default 5s).
	Timeout time.Duration
	// Rotate spreads queries across servers instead of always starting
	// with the first.
	Rotate bool
	// HostsFile is consulted before DNS for names and addresses; "" means
	// none. It is re-read when it changes (checked at most once a second).
	HostsFile string
	// UseTCP sends every query over TCP (resolv.conf's "use-vc").
	UseTCP bool
	// UDPSize is the EDNS0 buffer size advertised (default 1232, at least
	// 512). Replies larger than advertised are dropped as forged.
	UDPSize int
	// UDPQueriesPerSocket bounds how many queries share one UDP socket
	// (and so one source port). Queries a loop has in flight to a server
	// at the same time go out on one connected socket, which closes when
	// none waits on it any more; after this many queries a new socket
	// takes over. 0 means DefaultUDPQueriesPerSocket; 1 gives every query
	// a socket of its own (one source port per query, at the cost of a
	// socket, connect, poller registration and close per query). Much
	// larger values let a burst of replies overflow the socket's receive
	// buffer (about 200 KiB by default on Linux), and the queries whose
	// replies the kernel drops wait out their timeout.
	UDPQueriesPerSocket int

	// CacheSize bounds the number of names whose answers (positive or
	// negative, for each record type asked) are cached; 0 means
	// DefaultCacheSize and a negative value disables caching. Identical concurrent lookups are
	// coalesced into one query either way.
	CacheSize int
	// MinTTL and MaxTTL clamp how long a positive answer is cached (0 and
	// DefaultMaxTTL when zero).
	MinTTL, MaxTTL time.Duration
	// MaxNegativeTTL caps how long a "no such name" or "no such record"
	// answer is cached; its TTL comes from the zone's SOA record (RFC 2308).
	// Zero means DefaultMaxNegativeTTL.
	MaxNegativeTTL time.Duration

	// Group is the group whose loops run lookups started outside any task
	// (a plain goroutine); nil means fdpoll.Default(). A lookup started in
	// a task of this group runs on that task's loop; one started in a task
	// of another group runs on a loop of this one.
	Group *fdpoll.Group
}

// ConfigFromFile reads a resolv.conf(5) file: nameserver, search, domain
// and the options ndots, timeout, attempts, rotate and use-vc. Servers
// without a port use 53; a file without nameserver lines means the local
// server (127.0.0.1:53 and [::1]:53), as in the C library. HostsFile is set
// to /etc/hosts.
func ConfigFromFile(path string) (*Config, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dnsasync: reading %s: %w", path, err)
	}
	cfg := &Config{
		Search:    cc.Search,
		Ndots:     cc.Ndots,
		Attempts:  cc.Attempts,
		Timeout:   time.Duration(cc.Timeout) * time.Second,
		HostsFile: "/etc/hosts",
	}
	for _, s := range cc.Servers {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue // not numeric: cannot be used without DNS
		}
		cfg.Servers = append(cfg.Servers, netip.AddrPortFrom(ip, 53).String())
	}
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	// miekg/dns does not parse these two options.
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || fields[0] != "options" {
				continue
			}
			for _, o := range fields[1:] {
				switch o {
				case "rotate":
					cfg.Rotate = true
				case "use-vc", "usevc", "tcp":
					cfg.UseTCP = true
				}
			}
		}
	}
	return cfg, nil
}

// systemConfig is the configuration NewResolver(nil) uses: /etc/resolv.conf,
// or the C library's defaults when that file does not exist.
func systemConfig() (*Config, error) {
	cfg, err := ConfigFromFile("/etc/resolv.conf")
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{
			Servers:   []string{"127.0.0.1:53", "[::1]:53"},
			Ndots:     1,
			HostsFile: "/etc/hosts",
		}, nil
	}
	return cfg, err
}

// settings is a validated Config with defaults applied.
type settings struct {
	servers  []string
	search   []string // lower case, without leading or trailing dots
	ndots    int
	attempts int
	timeout  time.Duration
	rotate   bool
	useTCP   bool
	udpSize  int
	// udpQueriesPerSocket: at least 1.
	udpQueriesPerSocket int
	cacheSize           int
	minTTL, maxTTL      time.Duration
	maxNegTTL           time.Duration
	group               *fdpoll.Group
}

func (cfg *Config) settings() (*settings, error) {
	s := &settings{
		ndots:               max(cfg.Ndots, 0),
		attempts:            cfg.Attempts,
		timeout:             cfg.Timeout,
		rotate:              cfg.Rotate,
		useTCP:              cfg.UseTCP,
		udpSize:             cfg.UDPSize,
		udpQueriesPerSocket: cfg.UDPQueriesPerSocket,
		cacheSize:           cfg.CacheSize,
		minTTL:              max(cfg.MinTTL, 0),
		maxTTL:              cfg.MaxTTL,
		maxNegTTL:           cfg.MaxNegativeTTL,
		group:               cfg.Group,
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("dnsasync: Config.Servers is empty")
	}
	for _, srv := range cfg.Servers {
		ap, err := parseServer(srv)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, ap.String())
	}
	for _, d := range cfg.Search {
		d = strings.Trim(lowerASCII(d), ".")
		if d == "" {
			continue
		}
		if checkName(d) != nil {
			// Skipped, as unusable nameservers are: one odd domain in
			// resolv.conf must not cost the resolver its servers.
			continue
		}
		s.search = append(s.search, d)
	}
	if s.attempts <= 0 {
		s.attempts = DefaultAttempts
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	switch {
	case s.udpSize == 0:
		s.udpSize = DefaultUDPSize
	case s.udpSize < 512:
		s.udpSize = 512
	case s.udpSize > 65535:
		s.udpSize = 65535
	}
	if s.udpQueriesPerSocket <= 0 {
		s.udpQueriesPerSocket = DefaultUDPQueriesPerSocket
	}
	if s.cacheSize == 0 {
		s.cacheSize = DefaultCacheSize
	}
	if s.maxTTL <= 0 {
		s.maxTTL = DefaultMaxTTL
	}
	if s.maxTTL < s.minTTL {
		s.maxTTL = s.minTTL
	}
	if s.maxNegTTL <= 0 {
		s.maxNegTTL = DefaultMaxNegativeTTL
	}
	return s, nil
}

// parseServer parses a numeric "ip:port" or a bare IP.
func parseServer(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dnsasync: server %q: want a numeric ip:port", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("dnsasync: server %q: port 0", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
