package dnsasync

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

func TestCacheHit(t *testing.T) {
	srv, r, g := faultResolver(t, nil)
	got, err := await(t, r.LookupHost(context.Background(), dnstest.Host))
	wantAddrs(t, got, err, hostAddrs)
	if n, _ := srv.Count(); n != 2 {
		t.Fatalf("%d queries, want 2 (A and AAAA)", n)
	}
	// Again, from a goroutine and from a task: no query, and at once.
	got, err = await(t, r.LookupHost(context.Background(), dnstest.Host))
	wantAddrs(t, got, err, hostAddrs)
	inTask(t, g.Loop(1), func(ctx context.Context) {
		f := r.LookupHost(ctx, "HOST.example.test.")
		if !f.Done() {
			t.Error("a cached lookup did not complete at once")
		}
		got, err := fdpoll.Await(ctx, f)
		wantAddrs(t, got, err, hostAddrs)
		// The result is the caller's to change.
		got[0] = dnstest.Evil
	})
	got, err = await(t, r.LookupHost(context.Background(), dnstest.Host))
	wantAddrs(t, got, err, hostAddrs)
	// LookupNetIP and LookupCNAME share the entries.
	got, err = await(t, r.LookupNetIP(context.Background(), "ip6", dnstest.Host))
	wantAddrs(t, got, err, hostAddrs[2:])
	if _, err := await(t, r.LookupCNAME(context.Background(), dnstest.Host)); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries after cached lookups, want still 2", n)
	}
}

func TestCacheExpiry(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.MaxTTL = 300 * time.Millisecond })
	for range 2 {
		if _, err := lookupA(t, r, dnstest.Host); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := srv.Count(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := lookupA(t, r, dnstest.Host); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries after the TTL passed, want 2", n)
	}
}

func TestCacheTTLBounds(t *testing.T) {
	zeroTTL := func(x *dnstest.Exchange) {
		m := x.Answer()
		for _, rr := range m.Answer {
			rr.Header().Ttl = 0
		}
		x.Reply(m)
	}
	t.Run("TTL 0 is not cached", func(t *testing.T) {
		srv, r, _ := faultResolver(t, nil)
		srv.SetHandler(zeroTTL)
		lookupA(t, r, dnstest.Host)
		lookupA(t, r, dnstest.Host)
		if n, _ := srv.Count(); n != 2 {
			t.Errorf("%d queries, want 2", n)
		}
	})
	t.Run("MinTTL raises it", func(t *testing.T) {
		srv, r, _ := faultResolver(t, func(c *Config) { c.MinTTL = time.Minute })
		srv.SetHandler(zeroTTL)
		lookupA(t, r, dnstest.Host)
		lookupA(t, r, dnstest.Host)
		if n, _ := srv.Count(); n != 1 {
			t.Errorf("%d queries, want 1", n)
		}
	})
	t.Run("the least TTL of the chain counts", func(t *testing.T) {
		srv, r, _ := faultResolver(t, nil)
		srv.SetHandler(func(x *dnstest.Exchange) {
			m := x.Answer()
			m.Answer[0].Header().Ttl = 0 // the CNAME
			x.Reply(m)
		})
		lookupA(t, r, dnstest.WWW)
		lookupA(t, r, dnstest.WWW)
		if n, _ := srv.Count(); n != 2 {
			t.Errorf("%d queries, want 2", n)
		}
	})
}

func TestNegativeCache(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.MaxNegativeTTL = 300 * time.Millisecond })
	for range 2 {
		if _, err := lookupA(t, r, dnstest.Missing); !dnsError(t, err).IsNotFound {
			t.Fatalf("got %v, want not found", err)
		}
		if _, err := await(t, r.LookupNetIP(context.Background(), "ip6", dnstest.V4Only)); !dnsError(t, err).IsNotFound {
			t.Fatalf("got %v, want not found", err)
		}
	}
	if n, _ := srv.Count(); n != 2 {
		t.Fatalf("%d queries, want 2 (NXDOMAIN and NODATA cached)", n)
	}
	time.Sleep(400 * time.Millisecond)
	lookupA(t, r, dnstest.Missing)
	if n, _ := srv.Count(); n != 3 {
		t.Errorf("%d queries after MaxNegativeTTL, want 3", n)
	}
}

func TestNegativeTTLFromSOA(t *testing.T) {
	_, r, _ := faultResolver(t, nil)
	lookupA(t, r, dnstest.Missing)
	a := r.cache.get(cacheKey{dnstest.Missing, dns.TypeA}, monoNow())
	if a == nil || !a.notFound || a.ttl != dnstest.NegativeTTL*time.Second {
		t.Fatalf("cached %+v, want a negative answer for the SOA minimum (%ds)", a, dnstest.NegativeTTL)
	}
}

func TestNegativeWithoutSOANotCached(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.Rcode(dns.RcodeNameError))
	for range 2 {
		if _, err := lookupA(t, r, dnstest.Missing); !dnsError(t, err).IsNotFound {
			t.Fatalf("got %v, want not found", err)
		}
	}
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries, want 2: a negative answer without SOA is not cached (RFC 2308 5)", n)
	}
}

func TestFailuresNotCached(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.Nth(1, dnstest.Rcode(dns.RcodeServerFailure), dnstest.Answer))
	if _, err := lookupA(t, r, dnstest.Host); err == nil {
		t.Fatal("SERVFAIL: no error")
	}
	got, err := lookupA(t, r, dnstest.Host)
	wantAddrs(t, got, err, hostA)
}

// TestCoalescing starts many identical lookups while the server delays its
// reply: one query per record type reaches it.
func TestCoalescing(t *testing.T) {
	srv, r, g := faultResolver(t, nil)
	srv.SetHandler(dnstest.Delay(200*time.Millisecond, dnstest.Answer))
	var wg sync.WaitGroup
	var fs []*fdpoll.Future[struct{}]
	for i := range 50 {
		if i%2 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := await(t, r.LookupHost(context.Background(), dnstest.Host))
				if err != nil || len(got) != 4 {
					t.Errorf("goroutine: %v, %v", got, err)
				}
			}()
			continue
		}
		fs = append(fs, g.Loop(i%2).Spawn(context.Background(), func(ctx context.Context) error {
			got, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host))
			if err != nil || len(got) != 4 {
				t.Errorf("task: %v, %v", got, err)
			}
			return nil
		}))
	}
	wg.Wait()
	for _, f := range fs {
		await(t, f)
	}
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries for 50 concurrent lookups, want 2", n)
	}
}

// TestCoalescedCancel checks that one caller giving up does not end the
// query the others wait for.
func TestCoalescedCancel(t *testing.T) {
	srv, r, _ := faultResolver(t, nil)
	srv.SetHandler(dnstest.Delay(200*time.Millisecond, dnstest.Answer))
	ctx, cancel := context.WithCancel(context.Background())
	first := r.LookupHost(ctx, dnstest.Host)
	second := r.LookupHost(context.Background(), dnstest.Host)
	time.Sleep(20 * time.Millisecond)
	cancel()
	if _, err := await(t, first); err == nil {
		t.Error("the cancelled lookup succeeded")
	}
	got, err := await(t, second)
	wantAddrs(t, got, err, hostAddrs)
}

func TestCacheEviction(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.CacheSize = 8 })
	name := func(i int) string { return fmt.Sprintf("n%d.%s", i, dnstest.Wild) }
	for i := range 20 {
		if _, err := lookupA(t, r, name(i)); err != nil {
			t.Fatal(err)
		}
		// n0 is used all the time: CLOCK keeps it.
		if _, err := lookupA(t, r, name(0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n != 8 {
		t.Errorf("cache holds %d answers, want 8", n)
	}
	before, _ := srv.Count()
	lookupA(t, r, name(0))
	lookupA(t, r, name(19))
	if after, _ := srv.Count(); after != before {
		t.Errorf("recently used names were evicted: %d queries more", after-before)
	}
	lookupA(t, r, name(1))
	if after, _ := srv.Count(); after != before+1 {
		t.Errorf("an old name was not evicted")
	}
}

func TestCacheDisabled(t *testing.T) {
	srv, r, _ := faultResolver(t, func(c *Config) { c.CacheSize = -1 })
	lookupA(t, r, dnstest.Host)
	lookupA(t, r, dnstest.Host)
	if n, _ := srv.Count(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
	if n := r.cache.len(); n != 0 {
		t.Errorf("cache holds %d answers", n)
	}
}

func TestCacheSharding(t *testing.T) {
	c := newCache(DefaultCacheSize)
	if len(c.shards) < 2 {
		t.Fatalf("%d shards for %d entries", len(c.shards), DefaultCacheSize)
	}
	total := 0
	for i := range c.shards {
		total += c.shards[i].limit
	}
	if total > DefaultCacheSize {
		t.Errorf("shard limits add up to %d, more than %d", total, DefaultCacheSize)
	}
	now := monoNow()
	for i := range 3 * DefaultCacheSize {
		k := cacheKey{fmt.Sprintf("n%d.example", i), dns.TypeA}
		started := false
		c.join(k, now, func() *fdpoll.Future[*answer] {
			started = true
			return fdpoll.NewFuture[*answer]()
		})
		if !started {
			t.Fatal("a new key joined a flight")
		}
		c.settle(k, &answer{ttl: time.Minute}, nil)
	}
	if n := c.len(); n > DefaultCacheSize || n < DefaultCacheSize*9/10 {
		t.Errorf("cache holds %d answers, want about %d", n, DefaultCacheSize)
	}
}

// putName caches an answer of qtype for name, valid until expires, without a
// flight.
func putName(c *cache, name string, qtype uint16, ans *answer, expires int64) {
	h := hashName(name)
	s := c.shard(h)
	s.mu.Lock()
	s.put(cacheKey{name, qtype}, h, ans, expires)
	s.mu.Unlock()
}

// checkTable verifies a shard's index against its ring: every entry of the
// ring is found, nothing else is in the table, and the table is at most
// half full.
func checkTable(t *testing.T, s *cacheShard) {
	t.Helper()
	tab := s.table.Load()
	n := 0
	for i := range tab.slots {
		if tab.slots[i].Load() != nil {
			n++
		}
	}
	if n != len(s.ring) {
		t.Fatalf("table holds %d entries, ring %d", n, len(s.ring))
	}
	if 2*n > len(tab.slots) {
		t.Fatalf("table of %d slots holds %d entries", len(tab.slots), n)
	}
	for i, e := range s.ring {
		if e.slot != i {
			t.Fatalf("entry %q at ring slot %d says %d", e.name, i, e.slot)
		}
		if got := s.find(e.name, e.hash); got != e {
			t.Fatalf("entry %q not found in the table", e.name)
		}
	}
}

// TestCacheTable churns one shard through insertions, evictions (deletions
// with backward shifts in the table) and growth, and checks the table
// after each step; evicted names must be gone.
func TestCacheTable(t *testing.T) {
	c := newCache(100)
	if len(c.shards) != 1 {
		t.Fatalf("%d shards", len(c.shards))
	}
	s := &c.shards[0]
	far := monoNow() + int64(time.Hour)
	in := map[string]bool{}
	for i := range 2000 {
		name := fmt.Sprintf("n%d.example", i%700)
		putName(c, name, dns.TypeA, &answer{}, far)
		s.mu.Lock()
		checkTable(t, s)
		in = map[string]bool{}
		for _, e := range s.ring {
			in[e.name] = true
		}
		s.mu.Unlock()
		if !in[name] {
			t.Fatalf("%s not cached after put", name)
		}
	}
	if len(in) != 100 {
		t.Fatalf("%d names cached, want 100", len(in))
	}
	for i := range 700 {
		name := fmt.Sprintf("n%d.example", i)
		if got := c.get(cacheKey{name, dns.TypeA}, monoNow()) != nil; got != in[name] {
			t.Errorf("%s: cached %v, in the ring %v", name, got, in[name])
		}
	}
}

// TestCacheExpiresAtTTL checks the boundary of an answer's life with the
// time given explicitly: valid before its expiry, not at it.
func TestCacheExpiresAtTTL(t *testing.T) {
	c := newCache(DefaultCacheSize)
	const name = "host.example.test"
	a, aaaa, mx := &answer{}, &answer{}, &answer{}
	putName(c, name, dns.TypeA, a, 1000)
	putName(c, name, dns.TypeAAAA, aaaa, 2000)
	putName(c, name, dns.TypeMX, mx, 3000)
	var as answers
	if !c.getAll(name, hashName(name), typesIP[:], 999, &as) || as[0] != a || as[1] != aaaa {
		t.Errorf("at 999: %v, want both answers", as)
	}
	if c.getAll(name, hashName(name), typesIP[:], 1000, &as) {
		t.Error("at 1000: the A answer is still served")
	}
	if !c.getAll(name, hashName(name), typesIP6[:], 1999, &as) || as[0] != aaaa {
		t.Error("at 1999: no AAAA answer")
	}
	if got := c.get(cacheKey{name, dns.TypeMX}, 2999); got != mx {
		t.Errorf("MX at 2999: %v", got)
	}
	if got := c.get(cacheKey{name, dns.TypeMX}, 3000); got != nil {
		t.Errorf("MX at 3000: %v, want none", got)
	}
	// A newer answer replaces the old one.
	a2 := &answer{}
	putName(c, name, dns.TypeA, a2, 5000)
	if got := c.get(cacheKey{name, dns.TypeA}, 4000); got != a2 {
		t.Errorf("after replacing: %v", got)
	}
}

// TestCacheConcurrentReaders has readers look names up without the lock
// while writers replace their answers and evict them (a small cache, many
// names) and answers expire. Every answer names the name and the expiry it
// was stored with, so a reader would notice an answer of another name, an
// A and an AAAA answer of different names, or an expired answer: what a
// torn read would give. Run it with -race.
func TestCacheConcurrentReaders(t *testing.T) {
	c := newCache(32)
	const names = 96
	name := func(i int) string { return fmt.Sprintf("n%d.example", i) }
	// answer.server carries the name, answer.ttl the expiry.
	mk := func(n string, expires int64) *answer { return &answer{server: n, ttl: time.Duration(expires)} }
	ops := 20000
	if testing.Short() {
		ops = 2000
	}
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	var hits [4]int
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range ops {
				n := name((i*7 + w*13) % names)
				// Some answers expire at once, some soon, some later.
				exp := monoNow() + int64(i%3)*int64(50*time.Microsecond)
				putName(c, n, dns.TypeA, mk(n, exp), exp)
				putName(c, n, dns.TypeAAAA, mk(n, exp), exp)
				putName(c, n, dns.TypeMX, mk(n, exp), exp)
			}
		}()
	}
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := name((i*5 + r) % names)
				now := monoNow()
				var as answers
				if c.getAll(n, hashName(n), typesIP[:], now, &as) {
					hits[r]++
					for _, a := range as {
						if a.server != n || int64(a.ttl) <= now {
							t.Errorf("lookup of %s at %d: answer of %s expiring at %d", n, now, a.server, int64(a.ttl))
							return
						}
					}
				}
				if a := c.get(cacheKey{n, dns.TypeMX}, now); a != nil && (a.server != n || int64(a.ttl) <= now) {
					t.Errorf("MX of %s at %d: answer of %s expiring at %d", n, now, a.server, int64(a.ttl))
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	s := &c.shards[0]
	s.mu.Lock()
	checkTable(t, s)
	s.mu.Unlock()
	if hits[0]+hits[1]+hits[2]+hits[3] == 0 {
		t.Error("no reader ever hit: the test tests nothing")
	}
}

// TestEvictBoundedUnderHits checks that the CLOCK hand stops after two
// turns even while lock-free hits keep setting the reference bits behind
// it: eviction holds the shard's lock, so it must not run for as long as
// readers keep the entries hot.
func TestEvictBoundedUnderHits(t *testing.T) {
	c := newCache(4)
	const names = 4
	name := func(i int) string { return fmt.Sprintf("hot%d.example", i) }
	exp := monoNow() + int64(time.Hour)
	for i := range names {
		putName(c, name(i), dns.TypeA, &answer{ttl: time.Hour}, exp)
	}
	s := c.shard(hashName(name(0)))
	if len(s.ring) != names {
		t.Fatalf("ring of %d entries, want %d in one shard", len(s.ring), names)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, e := range s.ring { // the ring is not changed meanwhile
					e.ref.Store(true)
				}
			}
		}()
	}
	most := 0
	for range 20000 {
		s.mu.Lock()
		_, steps := s.evictCounting()
		s.mu.Unlock()
		most = max(most, steps)
	}
	close(stop)
	wg.Wait()
	if most > 2*names+1 {
		t.Errorf("the hand passed %d entries in one eviction, want at most %d (two turns and one)", most, 2*names+1)
	}
}

// TestCacheReadersDuringGrowth runs lock-free readers while fresh caches
// fill up, so that their probes overlap the table being replaced by a
// bigger one (and, past the limit, eviction's deletions): a reader must only
// ever find the name it asks for, and never index out of its table.
func TestCacheReadersDuringGrowth(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	const names = 600
	name := func(i int) string { return fmt.Sprintf("g%d.example", i) }
	exp := monoNow() + int64(time.Hour)
	for range rounds {
		c := newCache(250)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for r := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := r; ; i += 3 {
					select {
					case <-stop:
						return
					default:
					}
					n := name(i % names)
					var as answers
					if c.getAll(n, hashName(n), typesIP4[:], exp-1, &as) && as[0].server != n {
						t.Errorf("lookup of %s: answer of %s", n, as[0].server)
						return
					}
				}
			}()
		}
		for i := range names {
			n := name(i)
			putName(c, n, dns.TypeA, &answer{server: n, ttl: time.Hour}, exp)
		}
		close(stop)
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}
