// Command dns measures dnsasync side by side with Go's own resolver
// (net.Resolver with PreferGo, the pure-Go stub resolver) against one local
// NSD serving a static zone, in the same run: lookups per second and heap
// for many lookups in flight at once, uncached and cached, and the cost of
// one cached lookup.
//
//	go run ./dns                 # from bench/
//	go run ./dns -n 20000 -rounds 3
//
// Each round runs every peer once, in alternating order; the figures are
// medians over rounds and the ratios are taken within each round, so that
// a noisy machine moves both sides together.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/yieldio/yieldio/dnsasync"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

var (
	lookups = flag.Int("n", 10000, "lookups per peer per round")
	width   = flag.Int("c", 1000, "lookups in flight at once")
	rounds  = flag.Int("rounds", 9, "rounds")
	names   = flag.Int("names", 100, "distinct names in the cached scenario")
	single  = flag.Int("single", 1000000, "cached lookups in the one-at-a-time measurement")
	full    = flag.Int("fullnames", 12500, "names looked up to fill the cache (of the default size) before the one-at-a-time measurement with a full cache")
	only    = flag.String("only", "", "run one scenario only: uncached, cached, single or full")
	profile = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
)

// A peer is one way of making lookups.
type peer struct {
	name string
	// run makes lookups of name(i) for i in [0, n), width at a time, and
	// returns how many failed.
	run func(n int, name func(int) string) int
}

// A sample is one peer's figures for one round.
type sample struct {
	perSec      float64
	bytesPer    float64
	allocsPer   float64
	peakHeap    uint64
	serverCPU   float64 // server CPU seconds per wall second
	clientCPU   float64 // this process's CPU time per lookup, µs
	failed      int
	elapsedSecs float64
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns:", err)
		os.Exit(1)
	}
}

func run() error {
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "bench-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := dnstest.StartNSD(dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	g, err := fdpoll.NewGroup(0)
	if err != nil {
		return err
	}
	defer g.Close()

	fmt.Printf("dnsasync vs net.Resolver (PreferGo), NSD on %s, GOMAXPROCS=%d, %d loops, %s\n",
		srv.Addr, runtime.GOMAXPROCS(0), g.Len(), runtime.Version())
	fmt.Printf("%d lookups (A and AAAA each) per peer per round, %d in flight, %d rounds\n\n", *lookups, *width, *rounds)

	newResolver := func(cacheSize int) *dnsasync.Resolver {
		r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{srv.Addr}, Group: g, CacheSize: cacheSize})
		if err != nil {
			panic(err)
		}
		return r
	}
	goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr)
	}}

	// Uncached: every lookup a new name (the zone has a wildcard), from a
	// resolver without a cache (which would only keep answers no lookup
	// asks for again), a new one each round.
	var uncachedRes *dnsasync.Resolver
	uncached := []peer{
		{"dnsasync, tasks", func(n int, name func(int) string) int {
			return inTasks(g, n, name, func(ctx context.Context, host string) error {
				_, err := fdpoll.Await(ctx, uncachedRes.LookupHost(ctx, host))
				return err
			})
		}},
		{"dnsasync, goroutines", func(n int, name func(int) string) int {
			return inGoroutines(n, name, func(ctx context.Context, host string) error {
				_, err := fdpoll.Await(ctx, uncachedRes.LookupHost(ctx, host))
				return err
			})
		}},
		{"net.Resolver", func(n int, name func(int) string) int {
			return inGoroutines(n, name, func(ctx context.Context, host string) error {
				_, err := goRes.LookupNetIP(ctx, "ip", host)
				return err
			})
		}},
	}
	if *only == "" || *only == "uncached" {
		fmt.Println("## Uncached: a new name per lookup")
		results := measure(srv, uncached, func(round int, p int) func(int) string {
			uncachedRes = newResolver(-1)
			return func(i int) string { return fmt.Sprintf("u%d-%d-%d.%s", round, p, i, dnstest.Wild) }
		})
		report(uncached, results)
	}
	if *only == "uncached" {
		return nil
	}

	// Cached: a few names over and over. Go's resolver has no cache; it
	// coalesces concurrent lookups of one name (singleflight).
	cachedRes := newResolver(0)
	for i := range *names {
		if _, err := fdpoll.Await(context.Background(), cachedRes.LookupHost(context.Background(), cachedName(i))); err != nil {
			return err
		}
	}
	cached := []peer{
		{"dnsasync, tasks", func(n int, name func(int) string) int {
			return inTasks(g, n, name, func(ctx context.Context, host string) error {
				_, err := fdpoll.Await(ctx, cachedRes.LookupHost(ctx, host))
				return err
			})
		}},
		{"dnsasync, goroutines", func(n int, name func(int) string) int {
			return inGoroutines(n, name, func(ctx context.Context, host string) error {
				_, err := fdpoll.Await(ctx, cachedRes.LookupHost(ctx, host))
				return err
			})
		}},
		{"net.Resolver", func(n int, name func(int) string) int {
			return inGoroutines(n, name, func(ctx context.Context, host string) error {
				_, err := goRes.LookupNetIP(ctx, "ip", host)
				return err
			})
		}},
	}
	if *only == "" || *only == "cached" {
		fmt.Printf("\n## Cached: %d names, looked up over and over\n", *names)
		results := measure(srv, cached, func(int, int) func(int) string {
			return func(i int) string { return cachedName(i % *names) }
		})
		report(cached, results)
	}
	if *only == "cached" {
		return nil
	}

	if *only == "" || *only == "single" {
		fmt.Println("\n## One cached lookup at a time, from one goroutine")
		if err := oneAtATime(cachedRes, goRes); err != nil {
			return err
		}
	}
	if *only == "" || *only == "full" {
		fmt.Printf("\n## One cached lookup at a time, from one goroutine, cache full (%d other names looked up first, cache size %d)\n", *full, dnsasync.DefaultCacheSize)
		return fullCache(g, newResolver(0))
	}
	return nil
}

// fullCache fills r's cache with *full names, more than it keeps, then
// measures single cached lookups of one name as oneAtATime does.
func fullCache(g *fdpoll.Group, r *dnsasync.Resolver) error {
	fill := func(i int) string { return fmt.Sprintf("full%d.%s", i, dnstest.Wild) }
	if failed := inTasks(g, *full, fill, func(ctx context.Context, host string) error {
		_, err := fdpoll.Await(ctx, r.LookupHost(ctx, host))
		return err
	}); failed > 0 {
		return fmt.Errorf("filling the cache: %d lookups failed", failed)
	}
	ctx := context.Background()
	host := cachedName(0)
	if _, err := fdpoll.Await(ctx, r.LookupHost(ctx, host)); err != nil {
		return err
	}
	ds, allocs, err := cachedSingles(r, host)
	if err != nil {
		return err
	}
	printSingles("dnsasync, cached LookupHost + Await, full cache", ds, allocs)
	return nil
}

// printSingles starts a table of one-at-a-time figures with dnsasync's row:
// the median time per lookup over the rounds ds, and allocs per lookup.
func printSingles(label string, ds []float64, allocs float64) {
	fmt.Println()
	fmt.Println("| Peer | per lookup | allocs/lookup |")
	fmt.Println("| --- | ---: | ---: |")
	fmt.Printf("| %s | %.0f ns (median of %d rounds of %d; rounds: %s) | %.1f |\n",
		label, medianF(ds), *rounds, *single, fmtList(ds), allocs)
}

// measureEach runs fn n times and returns the time per call and the
// allocations per call.
func measureEach(n int, fn func()) (time.Duration, float64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		fn()
	}
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	return el / time.Duration(n), float64(after.Mallocs-before.Mallocs) / float64(n)
}

// cachedSingles times *single cached lookups of host by r, one at a time,
// in each of *rounds rounds: the times per lookup of each round and the
// allocations per lookup.
func cachedSingles(r *dnsasync.Resolver, host string) ([]float64, float64, error) {
	ctx := context.Background()
	var addrs []netip.Addr
	var err error
	var ds []float64
	var allocs float64
	for range *rounds {
		d, a := measureEach(*single, func() { addrs, err = fdpoll.Await(ctx, r.LookupHost(ctx, host)) })
		if err != nil || len(addrs) != 2 {
			return nil, 0, fmt.Errorf("cached lookup: %v %v", addrs, err)
		}
		ds = append(ds, float64(d))
		allocs = a
	}
	return ds, allocs, nil
}

func cachedName(i int) string { return fmt.Sprintf("c%d.%s", i, dnstest.Wild) }

// measure runs every peer once per round, in alternating order, and
// returns the samples by peer.
func measure(srv *dnstest.Server, peers []peer, names func(round, peer int) func(int) string) [][]sample {
	out := make([][]sample, len(peers))
	for round := range *rounds {
		order := make([]int, len(peers))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			out[p] = append(out[p], sample1(srv, peers[p], names(round, p)))
		}
	}
	return out
}

// sample1 runs one peer once and measures it.
func sample1(srv *dnstest.Server, p peer, name func(int) string) sample {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	cpu0, _ := srv.CPUTime()
	own0 := processCPU()
	start := time.Now()
	failed := p.run(*lookups, name)
	el := time.Since(start)
	own1 := processCPU()
	cpu1, _ := srv.CPUTime()
	close(stop)
	<-sampled
	runtime.ReadMemStats(&after)
	n := float64(*lookups)
	return sample{
		perSec:      n / el.Seconds(),
		bytesPer:    float64(after.TotalAlloc-before.TotalAlloc) / n,
		allocsPer:   float64(after.Mallocs-before.Mallocs) / n,
		peakHeap:    max(peak.Load(), after.HeapInuse),
		serverCPU:   (cpu1 - cpu0).Seconds() / el.Seconds(),
		clientCPU:   float64((own1 - own0).Microseconds()) / n,
		failed:      failed,
		elapsedSecs: el.Seconds(),
	}
}

// report prints medians per peer and the ratios of each peer to the last
// (net.Resolver), taken round by round: of lookups per second, and of the
// processor time a lookup costs this process, which moves less than wall
// time when other work shares the machine.
func report(peers []peer, s [][]sample) {
	base := len(peers) - 1
	fmt.Println()
	fmt.Println("| Peer | lookups/s | ratio to net.Resolver | client CPU per lookup | CPU ratio (net.Resolver's / this) | B/lookup | allocs/lookup | peak heap in use | NSD CPU | failed |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for i, p := range peers {
		var ratios, cpuRatios []float64
		for r := range s[i] {
			ratios = append(ratios, s[i][r].perSec/s[base][r].perSec)
			cpuRatios = append(cpuRatios, s[base][r].clientCPU/s[i][r].clientCPU)
		}
		failed := 0
		for _, x := range s[i] {
			failed += x.failed
		}
		fmt.Printf("| %s | %.0f | %.2f× (%s) | %.1f µs | %.2f× (%s) | %.0f | %.0f | %.1f MiB | %.0f%% | %d |\n",
			p.name, median(s[i], func(x sample) float64 { return x.perSec }),
			medianF(ratios), fmtList(ratios),
			median(s[i], func(x sample) float64 { return x.clientCPU }),
			medianF(cpuRatios), fmtList(cpuRatios),
			median(s[i], func(x sample) float64 { return x.bytesPer }),
			median(s[i], func(x sample) float64 { return x.allocsPer }),
			median(s[i], func(x sample) float64 { return float64(x.peakHeap) })/(1<<20),
			100*median(s[i], func(x sample) float64 { return x.serverCPU }),
			failed)
	}
	fmt.Println("\nMedians over rounds; per-round ratios in parentheses.")
}

// processCPU returns the processor time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// oneAtATime measures single cached lookups from one goroutine, and Go's
// resolver (which has no cache, so each lookup asks NSD) for comparison.
func oneAtATime(r *dnsasync.Resolver, goRes *net.Resolver) error {
	ctx := context.Background()
	host := cachedName(0)
	ds, allocs, err := cachedSingles(r, host)
	if err != nil {
		return err
	}
	gd, ga := measureEach(2000, func() { _, err = goRes.LookupNetIP(ctx, "ip", host) })
	if err != nil {
		return err
	}
	printSingles("dnsasync, cached LookupHost + Await", ds, allocs)
	fmt.Printf("| net.Resolver.LookupNetIP (no cache: asks NSD) | %v | %.1f |\n", gd, ga)
	return nil
}

// inTasks runs n lookups, width at a time, as tasks spread over g's loops.
func inTasks(g *fdpoll.Group, n int, name func(int) string, lookup func(context.Context, string) error) int {
	var next, failed atomic.Int64
	ctx := context.Background()
	fs := make([]fdpoll.Waitable, *width)
	for w := range *width {
		fs[w] = g.Loop(w%g.Len()).Spawn(ctx, func(ctx context.Context) error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				if lookup(ctx, name(i)) != nil {
					failed.Add(1)
				}
			}
		})
	}
	fdpoll.WaitAll(ctx, fs...)
	return int(failed.Load())
}

// inGoroutines runs n lookups, width at a time, on plain goroutines.
func inGoroutines(n int, name func(int) string, lookup func(context.Context, string) error) int {
	var next, failed atomic.Int64
	ctx := context.Background()
	var wg sync.WaitGroup
	for range *width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if lookup(ctx, name(i)) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

func median(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = f(x)
	}
	return medianF(v)
}

func medianF(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func fmtList(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += " "
		}
		if x >= 100 {
			s += fmt.Sprintf("%.0f", x)
		} else {
			s += fmt.Sprintf("%.2f", x)
		}
	}
	return s
}
