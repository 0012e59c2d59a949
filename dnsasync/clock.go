package dnsasync

import (
	"sync/atomic"
	"time"
)

// epoch anchors the monotonic clock used for cache expiry.
var epoch = time.Now()

// monoNow returns monotonic nanoseconds since epoch. It reads the system
// clock, which costs about 25 ns on a VM's kvm-clock: the hot path of a
// cached lookup uses coarseNow instead.
func monoNow() int64 { return int64(time.Since(epoch)) }

// clockPeriod is how long a reading of the clock serves cached lookups: a
// cached answer may be returned up to this long past its TTL (more only if
// the process cannot run a timer for longer than that, or the goroutine
// publishing a reading is descheduled in the few instructions between its
// swap and its second look at the clock).
const clockPeriod = 10 * time.Millisecond

// A coarseClock is a reading of monoNow shared by every cached lookup for up
// to a period, so that a cache hit costs no clock read. The first lookup
// after the reading lapsed reads the clock, publishes it and arms a timer
// that withdraws it one period later: while lookups come, the clock is read
// and the timer fires at most once a period; an idle process pays nothing.
type coarseClock struct {
	now    atomic.Int64 // the reading; 0 when there is none
	period time.Duration
	timer  *time.Timer  // withdraws the reading; armed by the publisher
	clock  func() int64 // monoNow; tests replace it
}

func newCoarseClock(period time.Duration) *coarseClock {
	c := &coarseClock{period: period, clock: monoNow}
	c.timer = time.AfterFunc(time.Hour, func() { c.now.Store(0) })
	c.timer.Stop()
	return c
}

// coarse is the process's coarse clock.
var coarse = newCoarseClock(clockPeriod)

// coarseNow returns monotonic nanoseconds since epoch, at most about
// clockPeriod old. It never runs ahead of monoNow.
func coarseNow() int64 { return coarse.read() }

func (c *coarseClock) read() int64 {
	if t := c.now.Load(); t != 0 {
		return t
	}
	t := max(c.clock(), 1) // 0 means no reading
	// One reader of many publishes and arms the timer; the timer cannot
	// be armed twice, since it is armed only by the swap from 0 and clears
	// the reading only when it fires.
	if c.now.CompareAndSwap(0, t) {
		c.timer.Reset(c.period)
		// A goroutine descheduled between reading the clock and the
		// swap publishes an old reading, older even than one published
		// and withdrawn meanwhile: a second look at the clock, once per
		// period, replaces it.
		if n := c.clock(); n-t >= int64(c.period)/2 {
			c.now.CompareAndSwap(t, n)
		}
	}
	return t
}
