// Command pg measures pgasync against pgx's pgxpool, side by side in one
// run, on the workload: 256 concurrent callers running
// "SELECT randomnumber FROM world WHERE id = $1" on a 10,000-row table.
//
//	go run ./pg                      # starts a throwaway cluster
//	go run ./pg -dsn postgres://...  # or uses yours
//
// Contestants run in turn, round after round, so that they share the
// machine's noise; the report gives each one's median over the rounds and
// the median of its per-round ratio to pgxpool. Queries per second is the headline; the process's
// CPU time per query (user+system, getrusage) and the heap show what each
// costs the client; the latency percentiles (from the call to the scanned
// row) what the callers see. pgbench, when installed, measures the server alone with
// the same query (plain and pipelined), for scale.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/pgcluster"
	"github.com/yieldio/yieldio/pgasync"
)

const (
	query     = "SELECT randomnumber FROM world WHERE id = $1"
	tableRows = 10000
)

var (
	dsnFlag  = flag.String("dsn", "", "PostgreSQL DSN (default: start a throwaway cluster)")
	duration = flag.Duration("d", 5*time.Second, "duration of each contestant's run in a round")
	rounds   = flag.Int("rounds", 3, "rounds")
	callers  = flag.Int("callers", 256, "concurrent callers")
	pgbench  = flag.Bool("pgbench", true, "also run pgbench (if installed) for the server's own figures")
	only     = flag.String("only", "", "run only contestants whose name contains this")
	params   = flag.String("pgasync", "", "extra DSN parameters for pgasync, e.g. pgasync_conns_per_loop=1")
	loops    = flag.Int("loops", 0, "pgasync loops (0: the default group, GOMAXPROCS loops)")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the measured runs to this file")
)

// A result is one contestant's run.
type result struct {
	qps        float64
	cpuPerQ    time.Duration // process CPU (user+sys) per query
	allocPerQ  float64       // heap bytes allocated per query
	mallocPerQ float64
	heapInuse  uint64        // peak during the run
	rwPerQ     float64       // read and write syscalls per query (Linux /proc/self/io)
	p50, p99   time.Duration // query latency (call to result) percentiles
}

// A histogram counts durations in buckets at most 12.5% wide (8 per power of
// two), concurrently and without locks.
type histogram struct {
	on      atomic.Bool
	buckets [64 * 8]atomic.Int64
}

// latencies collects the query latencies of the run being measured.
var latencies histogram

func (h *histogram) record(d time.Duration) {
	if !h.on.Load() || d <= 0 {
		return
	}
	h.buckets[bucketOf(uint64(d))].Add(1)
}

// bucketOf maps v to its power of two and the next three bits below it.
func bucketOf(v uint64) int {
	e := bits.Len64(v) - 1
	if e < 3 {
		return int(v)
	}
	return e*8 + int(v>>(e-3))&7
}

// lowerBound is the smallest value of bucket i.
func lowerBound(i int) time.Duration {
	e := i / 8
	if e < 3 {
		return time.Duration(i)
	}
	return time.Duration((8 + uint64(i%8)) << (e - 3))
}

func (h *histogram) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
}

// quantile returns the lower bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(q * float64(total))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen > want {
			return lowerBound(i)
		}
	}
	return lowerBound(len(h.buckets) - 1)
}

// rwSyscalls returns the process's read and write syscall counts so far
// (0 where /proc/self/io is missing).
func rwSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && (k == "syscr" || k == "syscw") {
			n, _ := strconv.ParseInt(v, 10, 64)
			total += n
		}
	}
	return total
}

// A contestant runs queries from callers until stop is closed, counting them.
type contestant struct {
	name  string
	setup func(ctx context.Context) error
	run   func(ctx context.Context, callers int, stop <-chan struct{}, n *atomic.Int64) error
	close func()
}

func main() {
	flag.Parse()
	ctx := context.Background()
	dsn := *dsnFlag
	if dsn == "" {
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			fatal(err)
		}
		defer c.Stop()
		dsn = c.DSN("")
		fmt.Printf("started a throwaway cluster: %s\n", dsn)
	}
	if err := createWorld(ctx, dsn); err != nil {
		fatal(err)
	}
	fmt.Printf("GOMAXPROCS=%d, %d callers, %v per run, %d rounds\n\n", runtime.GOMAXPROCS(0), *callers, *duration, *rounds)

	contestants := []*contestant{pgxpoolContestant(dsn), pgasyncTasks(dsn), pgasyncGoroutines(dsn)}
	results := make(map[string][]result)
	for _, c := range contestants {
		if *only != "" && !strings.Contains(c.name, *only) {
			continue
		}
		if err := c.setup(ctx); err != nil {
			fatal(fmt.Errorf("%s: %w", c.name, err))
		}
		defer c.close()
	}
	for r := range *rounds {
		for _, c := range contestants {
			if *only != "" && !strings.Contains(c.name, *only) {
				continue
			}
			res, err := measure(ctx, c)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", c.name, err))
			}
			fmt.Printf("round %d  %-22s %8.0f q/s  %6.1f µs CPU/query  %5.2f rw syscalls/query  %5.0f B/query  %4.1f allocs/query  heap %5.1f MiB  latency p50 %s p99 %s\n",
				r+1, c.name, res.qps, float64(res.cpuPerQ.Nanoseconds())/1e3, res.rwPerQ, res.allocPerQ, res.mallocPerQ, float64(res.heapInuse)/(1<<20), ms(res.p50), ms(res.p99))
			results[c.name] = append(results[c.name], res)
		}
	}

	fmt.Printf("\nmedians over %d rounds; ratio: median of each round's q/s over pgxpool's in that round:\n", *rounds)
	base := results["pgxpool"]
	fmt.Printf("%-22s %10s %8s %14s %16s %10s %10s %9s %9s\n", "", "q/s", "ratio", "µs CPU/query", "rw syscalls/q", "B/query", "heap MiB", "p50", "p99")
	for _, c := range contestants {
		rs, ok := results[c.name]
		if !ok {
			continue
		}
		m := median(rs)
		ratio := "-"
		if len(base) == len(rs) {
			var ratios []float64
			for i := range rs {
				ratios = append(ratios, rs[i].qps/base[i].qps)
			}
			slices.Sort(ratios)
			ratio = fmt.Sprintf("%.2fx", ratios[len(ratios)/2])
		}
		fmt.Printf("%-22s %10.0f %8s %14.1f %16.2f %10.0f %10.1f %9s %9s\n", c.name, m.qps, ratio, float64(m.cpuPerQ.Nanoseconds())/1e3, m.rwPerQ, m.allocPerQ, float64(m.heapInuse)/(1<<20), ms(m.p50), ms(m.p99))
	}
	if *pgbench {
		runPgbench(dsn)
	}
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/pg:", err)
	os.Exit(1)
}

// median returns the run with the median q/s (and its other figures).
func median(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.qps < b.qps:
			return -1
		case a.qps > b.qps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func createWorld(ctx context.Context, dsn string) error {
	p, err := pgasync.Open(dsn)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = fdpoll.Await(ctx, p.Exec(ctx, `
		DROP TABLE IF EXISTS world;
		CREATE TABLE world (id int PRIMARY KEY, randomnumber int NOT NULL);
		INSERT INTO world SELECT g, (random() * 10000)::int FROM generate_series(1, `+strconv.Itoa(tableRows)+`) g;
		ANALYZE world`))
	return err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs c for the duration (after a short warm-up) and reports.
func measure(ctx context.Context, c *contestant) (result, error) {
	var n atomic.Int64
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- c.run(ctx, *callers, stop, &n) }()
	time.Sleep(500 * time.Millisecond) // warm-up: connections, statement caches
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf + "." + strings.Fields(c.name)[0] + "." + strings.Trim(strings.Join(strings.Fields(c.name)[1:], ""), "()"))
		if err == nil {
			pprof.StartCPUProfile(f)
			defer func() {
				pprof.StopCPUProfile()
				f.Close()
			}()
		}
	}
	latencies.reset()
	latencies.on.Store(true)
	n0, cpu0, t0, io0 := n.Load(), cpuTime(), time.Now(), rwSyscalls()
	var peak atomic.Uint64
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	time.Sleep(*duration)
	n1, cpu1, t1, io1 := n.Load(), cpuTime(), time.Now(), rwSyscalls()
	latencies.on.Store(false)
	runtime.ReadMemStats(&ms1)
	close(stop)
	<-sampling
	if err := <-errc; err != nil {
		return result{}, err
	}
	q := float64(n1 - n0)
	if q == 0 {
		return result{}, fmt.Errorf("no queries completed")
	}
	return result{
		qps:        q / t1.Sub(t0).Seconds(),
		cpuPerQ:    time.Duration(float64(cpu1-cpu0) / q),
		allocPerQ:  float64(ms1.TotalAlloc-ms0.TotalAlloc) / q,
		mallocPerQ: float64(ms1.Mallocs-ms0.Mallocs) / q,
		heapInuse:  peak.Load(),
		rwPerQ:     float64(io1-io0) / q,
		p50:        latencies.quantile(0.50),
		p99:        latencies.quantile(0.99),
	}, nil
}

// callersUntil runs fn in callers goroutines until stop closes.
func callersUntil(callers int, stop <-chan struct{}, fn func() error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return nil
}

func pgxpoolContestant(dsn string) *contestant {
	c := &contestant{name: "pgxpool"}
	var pool *pgxpool.Pool
	c.setup = func(ctx context.Context) (err error) {
		pool, err = pgxpool.New(ctx, dsn)
		if err == nil {
			fmt.Printf("pgxpool: MaxConns %d (its default)\n", pool.Config().MaxConns)
		}
		return err
	}
	c.run = func(ctx context.Context, callers int, stop <-chan struct{}, n *atomic.Int64) error {
		return callersUntil(callers, stop, func() error {
			var v int32
			t0 := time.Now()
			if err := pool.QueryRow(ctx, query, rand.IntN(tableRows)+1).Scan(&v); err != nil {
				return err
			}
			latencies.record(time.Since(t0))
			n.Add(1)
			return nil
		})
	}
	c.close = func() { pool.Close() }
	return c
}

// group is the loops pgasync and its calling tasks run on.
var group = sync.OnceValue(func() *fdpoll.Group {
	if *loops <= 0 {
		return fdpoll.Default()
	}
	g, err := fdpoll.NewGroup(*loops)
	if err != nil {
		fatal(err)
	}
	return g
})

func openPgasync(ctx context.Context, dsn string) (*pgasync.Pool, error) {
	if *params != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + *params
	}
	cfg, err := pgasync.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Group = group()
	p, err := pgasync.OpenConfig(cfg)
	if err != nil {
		return nil, err
	}
	cfg = p.Config()
	fmt.Printf("pgasync: %d loops x %d connections (%s)\n", cfg.Group.Len(), cfg.ConnsPerLoop, cfg.ExecMode)
	return p, nil
}

func queryOnce(ctx context.Context, p *pgasync.Pool) error {
	row, err := fdpoll.Await(ctx, p.QueryRow(ctx, query, rand.IntN(tableRows)+1))
	if err != nil {
		return err
	}
	var v int32
	return row.Scan(&v)
}

// pgasyncTasks: the callers are tasks on the default group's loops, as
// handlers on the yieldio server are.
func pgasyncTasks(dsn string) *contestant {
	c := &contestant{name: "pgasync (tasks)"}
	var p *pgasync.Pool
	c.setup = func(ctx context.Context) (err error) {
		p, err = openPgasync(ctx, dsn)
		return err
	}
	c.run = func(ctx context.Context, callers int, stop <-chan struct{}, n *atomic.Int64) error {
		fs := make([]fdpoll.Waitable, callers)
		stopped := fdpoll.NewFuture[struct{}]()
		go func() {
			<-stop
			stopped.Complete(struct{}{}, nil)
		}()
		g := group()
		tasks := make([]*fdpoll.Future[struct{}], callers)
		for i := range callers {
			tasks[i] = g.Spawn(ctx, func(ctx context.Context) error {
				for !stopped.Done() {
					t0 := time.Now()
					if err := queryOnce(ctx, p); err != nil {
						return err
					}
					latencies.record(time.Since(t0))
					n.Add(1)
				}
				return nil
			})
			fs[i] = tasks[i]
		}
		if err := fdpoll.WaitAll(ctx, fs...); err != nil {
			return err
		}
		for _, t := range tasks {
			if err := t.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	c.close = func() { p.Close() }
	return c
}

// pgasyncGoroutines: the callers are plain goroutines (net/http handlers),
// blocking in fdpoll.Await.
func pgasyncGoroutines(dsn string) *contestant {
	c := &contestant{name: "pgasync (goroutines)"}
	var p *pgasync.Pool
	c.setup = func(ctx context.Context) (err error) {
		p, err = openPgasync(ctx, dsn)
		return err
	}
	c.run = func(ctx context.Context, callers int, stop <-chan struct{}, n *atomic.Int64) error {
		return callersUntil(callers, stop, func() error {
			t0 := time.Now()
			if err := queryOnce(ctx, p); err != nil {
				return err
			}
			latencies.record(time.Since(t0))
			n.Add(1)
			return nil
		})
	}
	c.close = func() { p.Close() }
	return c
}

// runPgbench measures the server alone with the same query: pgbench's
// prepared statements, plain and pipelined (its \startpipeline).
func runPgbench(dsn string) {
	bin, err := pgcluster.FindBin("pgbench")
	if err != nil {
		fmt.Println("\npgbench not found; skipping the server's own figures")
		return
	}
	dir, err := os.MkdirTemp("", "pgbench-")
	if err != nil {
		return
	}
	defer os.RemoveAll(dir)
	scripts := map[string]string{
		"plain":     "\\set id random(1, 10000)\nSELECT randomnumber FROM world WHERE id = :id;\n",
		"pipelined": "\\startpipeline\n" + strings.Repeat("\\set id random(1, 10000)\nSELECT randomnumber FROM world WHERE id = :id;\n", 64) + "\\endpipeline\n",
	}
	fmt.Println("\npgbench (the server alone, same query, 64 clients, 2 threads):")
	for _, name := range []string{"plain", "pipelined"} {
		path := dir + "/" + name + ".sql"
		os.WriteFile(path, []byte(scripts[name]), 0o644)
		cmd := exec.Command(bin, "-n", "-M", "prepared", "-c", "64", "-j", "2", "-T", strconv.Itoa(int(duration.Seconds())), "-f", path, dsn)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Printf("  %-10s failed: %v\n%s\n", name, err, out)
			continue
		}
		tps := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
		if tps == nil {
			fmt.Printf("  %-10s: no tps in output\n%s\n", name, out)
			continue
		}
		v, _ := strconv.ParseFloat(string(tps[1]), 64)
		if name == "pipelined" {
			v *= 64 // a transaction is 64 queries
		}
		fmt.Printf("  %-10s %8.0f queries/s\n", name, v)
	}
}
