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
