package dnsasync

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/internal/dnstest"
)

// TestHostsFilter checks the hosts table's filter: every listed name
// passes it (a false negative would hide a listed name), and most names
// that are not listed do not (else it saves nothing).
func TestHostsFilter(t *testing.T) {
	for _, n := range []int{1, 3, 100, 5000} {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "192.0.2.%d h%d.example H%d-alias.example\n", i%250+1, i, i)
		}
		h := newHostsFile("")
		h.table.Store(parseHosts([]byte(b.String())))
		for i := range n {
			for _, name := range []string{fmt.Sprintf("h%d.example", i), fmt.Sprintf("h%d-alias.example", i)} {
				if got := h.lookup(name, hashName(name), monoNow()); len(got) != 1 {
					t.Fatalf("%d names: %s: %v", n, name, got)
				}
			}
		}
		tab := h.table.Load()
		passed := 0
		const tries = 10000
		for i := range tries {
			name := fmt.Sprintf("other%d.example", i)
			if b := hashName(name) >> tab.filterShift; tab.filter[b/64]&(1<<(b%64)) != 0 {
				passed++
			}
			if got := h.lookup(name, hashName(name), monoNow()); got != nil {
				t.Fatalf("%s: %v", name, got)
			}
		}
		// At least 8 bits per name: about 1 in 8 passes at most.
		if passed > tries/5 {
			t.Errorf("%d names: the filter let %d of %d unlisted names through", n, passed, tries)
		}
	}
}

// TestCoarseClockShared checks that readings of the coarse clock within a
// period are one reading, taken from monoNow and never ahead of it.
func TestCoarseClockShared(t *testing.T) {
	c := newCoarseClock(time.Hour)
	defer c.timer.Stop()
	before := monoNow()
	first := c.read()
	time.Sleep(2 * time.Millisecond)
	second := c.read()
	after := monoNow()
	if first < before || first > after {
		t.Fatalf("reading %d outside [%d, %d]", first, before, after)
	}
	if second != first {
		t.Errorf("second reading %d, want the first, %d, within the period", second, first)
	}
}

// TestCoarseClockLapses checks that a reading is withdrawn once its period
// has passed, so that the next one is current.
func TestCoarseClockLapses(t *testing.T) {
	c := newCoarseClock(time.Millisecond)
	defer c.timer.Stop()
	for round := range 3 {
		first := c.read()
		deadline := time.Now().Add(testTimeout)
		for c.now.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the reading was not withdrawn", round)
			}
			time.Sleep(time.Millisecond)
		}
		before := monoNow()
		if next := c.read(); next < before || next <= first {
			t.Fatalf("round %d: reading %d after the lapse, before it %d, the clock %d", round, next, first, before)
		}
	}
}

// TestCoarseClockLatePublish checks that a reading published late (its
// goroutine was descheduled between reading the clock and publishing, and
// a newer reading came and went meanwhile) is replaced by a current one
// before it serves lookups for a period.
func TestCoarseClockLatePublish(t *testing.T) {
	c := newCoarseClock(10 * time.Millisecond)
	defer c.timer.Stop()
	now := int64(time.Hour)
	readings := []int64{now - int64(50*time.Millisecond), now} // the stale one, then the clock
	c.clock = func() int64 {
		r := readings[0]
		if len(readings) > 1 {
			readings = readings[1:]
		}
		return r
	}
	c.read()
	if got := c.now.Load(); got != now {
		t.Fatalf("published reading %d, want the current one %d (a late reading stayed)", got, now)
	}
}

// TestCachedResultSize checks that a cached lookup returns its addresses in
// one allocation of the smallest size for their number: 96 bytes for one
// address, 112 for two, 160 for four.
func TestCachedResultSize(t *testing.T) {
	_, r, _ := faultResolver(t, nil)
	ctx := context.Background()
	for _, c := range []struct {
		host  string
		want  []netip.Addr
		bytes int64
	}{
		{dnstest.V4Only, []netip.Addr{netip.MustParseAddr("192.0.2.10")}, 96},
		{dnstest.V6Only, []netip.Addr{netip.MustParseAddr("2001:db8::10")}, 96},
		{"x." + dnstest.Wild, []netip.Addr{netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("2001:db8::50")}, 112},
		{dnstest.Host, hostAddrs, 160},
	} {
		got, err := await(t, r.LookupHost(ctx, c.host))
		wantAddrs(t, got, err, c.want)
		f := r.LookupHost(ctx, c.host)
		if !f.Done() {
			t.Fatalf("%s: the cached lookup did not complete at once", c.host)
		}
		got, err = await(t, f)
		wantAddrs(t, got, err, c.want)
		if cap(got) != len(got) {
			t.Errorf("%s: %d addresses with room for %d: an append by the caller would write into the future", c.host, len(got), cap(got))
		}
		const runs = 10000
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			r.LookupHost(ctx, c.host)
		}
		runtime.ReadMemStats(&after)
		// Other goroutines of the process may allocate a little meanwhile.
		a := float64(after.Mallocs-before.Mallocs) / runs
		n := float64(after.TotalAlloc-before.TotalAlloc) / runs
		if a > 1.01 || n > float64(c.bytes)+1 {
			t.Errorf("%s: a cached lookup of %d addresses allocates %.2f times, %.1f bytes; want once, %d bytes", c.host, len(c.want), a, n, c.bytes)
		}
	}
}
