package dnsasync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// Benchmarks ask a real NSD on a loopback port. Run them with
//
//	go test -run '^$' -bench . -benchmem ./dnsasync/

func benchResolver(b *testing.B, addr string, edit func(*Config)) (*Resolver, *fdpoll.Group) {
	b.Helper()
	g, err := fdpoll.NewGroup(0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	cfg := &Config{Servers: []string{addr}, Group: g}
	if edit != nil {
		edit(cfg)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return r, g
}

// BenchmarkCachedLookupHost is a cached LookupHost from a plain goroutine:
// the fast path every caller takes for a name it asked before.
func BenchmarkCachedLookupHost(b *testing.B) {
	srv := dnstest.Fault(b)
	r, _ := benchResolver(b, srv.Addr, nil)
	ctx := context.Background()
	if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f := r.LookupHost(ctx, dnstest.Host)
		if addrs, err := fdpoll.Await(ctx, f); err != nil || len(addrs) != 4 {
			b.Fatal(addrs, err)
		}
	}
}

// BenchmarkCachedLookupHostInTask is the same from a task on a loop.
func BenchmarkCachedLookupHostInTask(b *testing.B) {
	srv := dnstest.Fault(b)
	r, g := benchResolver(b, srv.Addr, nil)
	ctx := context.Background()
	if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	done := g.Loop(0).Spawn(ctx, func(ctx context.Context) error {
		for b.Loop() {
			if addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil || len(addrs) != 4 {
				return fmt.Errorf("%v %v", addrs, err)
			}
		}
		return nil
	})
	if _, err := fdpoll.Await(ctx, done); err != nil {
		b.Fatal(err)
	}
}

// fullCacheNames is how many other names BenchmarkCachedFullCache looks up
// first: more than DefaultCacheSize, so that the cache is full and evicts.
const fullCacheNames = DefaultCacheSize * 5 / 4

// fillCache looks up n distinct names under dnstest.Wild (an A and an AAAA
// record each), 64 at a time, so that r's cache holds real answers.
func fillCache(b *testing.B, r *Resolver, n int) {
	b.Helper()
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		fail error
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, fmt.Sprintf("f%d.%s", i, dnstest.Wild))); err != nil {
					mu.Lock()
					fail = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		b.Fatal(fail)
	}
}

// BenchmarkCachedFullCache is a cached LookupHost, as in
// BenchmarkCachedLookupHost and BenchmarkCachedLookupHostInTask, with the
// cache full: fullCacheNames other names were looked up first, as in a
// process that has resolved many names. The cache's maps, the live heap and
// the collector's work per cycle are at their largest. "one" asks for one
// name over and over; "spread" for 1,000 cached names in turn, whose
// entries are not all in the processor's caches.
func BenchmarkCachedFullCache(b *testing.B) {
	srv := dnstest.Fault(b)
	r, g := benchResolver(b, srv.Addr, nil)
	ctx := context.Background()
	fillCache(b, r, fullCacheNames)
	if n := r.cache.len(); n < DefaultCacheSize*9/10 {
		b.Fatalf("the cache holds %d names, want about %d", n, DefaultCacheSize)
	}
	spread := make([]string, 1000)
	for i := range spread {
		// The names looked up last: still cached.
		spread[i] = fmt.Sprintf("f%d.%s", fullCacheNames-1-i, dnstest.Wild)
	}
	if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil {
		b.Fatal(err)
	}
	one := func(int) (string, int) { return dnstest.Host, 4 }
	many := func(i int) (string, int) { return spread[i%len(spread)], 2 }
	for _, c := range []struct {
		name string
		host func(int) (string, int)
		task bool
	}{
		{"one/goroutine", one, false},
		{"one/task", one, true},
		{"spread/goroutine", many, false},
		{"spread/task", many, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			// A miss would show as a query and many allocations.
			before, _ := srv.Count()
			loop := func(ctx context.Context) error {
				i := 0
				for b.Loop() {
					host, want := c.host(i)
					i++
					if addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, host)); err != nil || len(addrs) != want {
						return fmt.Errorf("%s: %v %v", host, addrs, err)
					}
				}
				return nil
			}
			b.ReportAllocs()
			var err error
			if c.task {
				_, err = fdpoll.Await(ctx, g.Loop(0).Spawn(ctx, loop))
			} else {
				err = loop(ctx)
			}
			if err != nil {
				b.Fatal(err)
			}
			if after, _ := srv.Count(); after != before {
				b.Fatalf("%d queries during the benchmark: a cached name was missed", after-before)
			}
		})
	}
}

// BenchmarkCachedBigHostsFile is BenchmarkCachedLookupHost with a hosts
// file of 50,000 names (as ad-blocking lists are), none of them the name
// looked up: what checking the hosts file first costs.
func BenchmarkCachedBigHostsFile(b *testing.B) {
	srv := dnstest.Fault(b)
	path := filepath.Join(b.TempDir(), "hosts")
	var hosts strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&hosts, "0.0.0.0 ads%d.example.net\n", i)
	}
	if err := os.WriteFile(path, []byte(hosts.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	r, _ := benchResolver(b, srv.Addr, func(c *Config) { c.HostsFile = path })
	ctx := context.Background()
	if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host)); err != nil || len(addrs) != 4 {
			b.Fatal(addrs, err)
		}
	}
}

// BenchmarkCachedLookupHostParallel is cached lookups from GOMAXPROCS
// goroutines at once, of a few names: how much the cache's locks cost
// under contention.
func BenchmarkCachedLookupHostParallel(b *testing.B) {
	srv := dnstest.Fault(b)
	r, _ := benchResolver(b, srv.Addr, nil)
	ctx := context.Background()
	names := []string{dnstest.Host, dnstest.WWW, dnstest.V4Only, dnstest.V6Only}
	for _, n := range names {
		if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, n)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, names[i%len(names)])); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCacheGet is the cache's hit path alone (a hash and the shard's
// table, read without a lock), and BenchmarkUnlockedMapGet a plain map
// read by one goroutine, for comparison.
func BenchmarkCacheGet(b *testing.B) {
	c := newCache(DefaultCacheSize)
	k := cacheKey{"host.example.test", dns.TypeA}
	c.join(k, monoNow(), func() *fdpoll.Future[*answer] { return fdpoll.NewFuture[*answer]() })
	c.settle(k, &answer{ttl: 3600e9}, nil)
	now := monoNow()
	b.ReportAllocs()
	for b.Loop() {
		if c.get(k, now) == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkUnlockedMapGet(b *testing.B) {
	m := map[string]*cachedAnswer{}
	k := "host.example.test"
	m[k] = &cachedAnswer{ans: &answer{}, expires: monoNow() + 3600e9}
	now := monoNow()
	b.ReportAllocs()
	for b.Loop() {
		if e := m[k]; e == nil || e.expires <= now {
			b.Fatal("miss")
		}
	}
}

// BenchmarkUncachedLookupHost is one LookupHost at a time (A and AAAA in
// parallel) of a new name each time, against NSD: the latency of a miss.
// BenchmarkGoResolverLookupHost is Go's resolver doing the same.
func BenchmarkUncachedLookupHost(b *testing.B) {
	srv := dnstest.NSD(b)
	r, _ := benchResolver(b, srv.Addr, func(c *Config) { c.CacheSize = -1 })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("n%d.%s", i, dnstest.Wild)
		if addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, name)); err != nil || len(addrs) != 2 {
			b.Fatal(addrs, err)
		}
	}
}

func BenchmarkGoResolverLookupHost(b *testing.B) {
	srv := dnstest.NSD(b)
	nr := goResolver(srv.Addr)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("n%d.%s", i, dnstest.Wild)
		if addrs, err := nr.LookupNetIP(ctx, "ip", name); err != nil || len(addrs) != 2 {
			b.Fatal(addrs, err)
		}
	}
}

// BenchmarkUncachedConcurrent keeps 1000 lookups of new names in flight;
// BenchmarkGoResolverConcurrent does the same with Go's resolver.
func BenchmarkUncachedConcurrent(b *testing.B) {
	srv := dnstest.NSD(b)
	r, g := benchResolver(b, srv.Addr, func(c *Config) { c.CacheSize = -1 })
	runConcurrent(b, 1000, func(ctx context.Context, name string) error {
		_, err := fdpoll.Await(ctx, r.LookupHost(ctx, name))
		return err
	}, g)
}

func BenchmarkGoResolverConcurrent(b *testing.B) {
	srv := dnstest.NSD(b)
	nr := goResolver(srv.Addr)
	runConcurrent(b, 1000, func(ctx context.Context, name string) error {
		_, err := nr.LookupNetIP(ctx, "ip", name)
		return err
	}, nil)
}

// runConcurrent runs b.N lookups of distinct names, width at a time: as
// tasks spread over g's loops, or as goroutines when g is nil.
func runConcurrent(b *testing.B, width int, lookup func(ctx context.Context, name string) error, g *fdpoll.Group) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var (
		mu   sync.Mutex
		next int
		errs int
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= b.N {
			return 0, false
		}
		next++
		return next, true
	}
	worker := func(ctx context.Context) error {
		for {
			i, ok := take()
			if !ok {
				return nil
			}
			if err := lookup(ctx, fmt.Sprintf("b%d.%s", i, dnstest.Wild)); err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
			}
		}
	}
	if g != nil {
		fs := make([]fdpoll.Waitable, width)
		for i := range width {
			fs[i] = g.Loop(i%g.Len()).Spawn(ctx, worker)
		}
		fdpoll.WaitAll(ctx, fs...)
	} else {
		var wg sync.WaitGroup
		for range width {
			wg.Add(1)
			go func() { defer wg.Done(); worker(ctx) }()
		}
		wg.Wait()
	}
	if errs > 0 {
		b.Fatalf("%d of %d lookups failed", errs, b.N)
	}
}
