package fdpoll

import "time"

// epoch is the origin of the monotonic clock timers use.
var epoch = time.Now()

// mono returns the monotonic time now, in nanoseconds since epoch.
func mono() int64 { return int64(time.Since(epoch)) }

// monoOf converts t to the timers' clock. A t carrying a monotonic reading
// converts exactly; one without (time.Unix, a parsed time) goes by the wall
// clock.
func monoOf(t time.Time) int64 { return int64(t.Sub(epoch)) }

// A timer fires once on its loop at when: it wakes task t at generation gen,
// or calls fn.
type timer struct {
	when int64
	idx  int // position in the heap; -1 once fired or stopped
	t    *task
	gen  uint32
	fn   func()
}

// timerHeap is a binary min-heap of timers by when. It belongs to one loop.
type timerHeap []*timer

func (h *timerHeap) push(tm *timer) {
	tm.idx = len(*h)
	*h = append(*h, tm)
	h.up(tm.idx)
}

func (h *timerHeap) remove(tm *timer) {
	i := tm.idx
	if i < 0 || i >= len(*h) || (*h)[i] != tm {
		return // not in the heap (never added, fired or stopped)
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	tm.idx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h timerHeap) less(i, j int) bool { return h[i].when < h[j].when }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

// A Timer runs a function on its loop once its duration has passed. Timers
// live in the loop's own heap: creating, stopping and resetting one costs no
// syscall and no goroutine. All its methods must be called on its loop (in a
// task or callback of that loop).
type Timer struct {
	l  *Loop
	tm timer
}

// AfterFunc returns a Timer that calls fn on l after d. fn runs outside any
// task and must not wait. It must be called on l.
func (l *Loop) AfterFunc(d time.Duration, fn func()) *Timer {
	l.mustBeOn("AfterFunc")
	t := &Timer{l: l, tm: timer{fn: fn, idx: -1}}
	t.Reset(d)
	return t
}

// Stop prevents the timer from firing. It reports whether it was pending.
func (t *Timer) Stop() bool {
	t.l.mustBeOn("Timer.Stop")
	pending := t.tm.idx >= 0
	t.l.stopTimer(&t.tm)
	return pending
}

// Reset makes the timer fire after d from now, whether or not it was
// pending or had fired. It reports whether it was pending.
func (t *Timer) Reset(d time.Duration) bool {
	pending := t.Stop()
	t.tm.when = mono() + int64(d)
	t.l.timers.push(&t.tm)
	return pending
}

func (l *Loop) mustBeOn(what string) {
	if !l.onLoop() {
		panic("fdpoll: " + what + " called off the timer's loop")
	}
}

// addTimer schedules a timer on l. It must be called on l.
func (l *Loop) addTimer(when int64, fn func(), t *task, gen uint32) *timer {
	tm := &timer{when: when, fn: fn, t: t, gen: gen}
	l.timers.push(tm)
	return tm
}

// stopTimer cancels tm if it has not fired. It must be called on l.
func (l *Loop) stopTimer(tm *timer) { l.timers.remove(tm) }

// fireTimers runs every timer that is due.
func (l *Loop) fireTimers() {
	if len(l.timers) == 0 {
		return
	}
	now := mono()
	for len(l.timers) > 0 && l.timers[0].when <= now {
		tm := l.timers[0]
		l.timers.remove(tm)
		if tm.t != nil {
			l.wakeTask(tm.t, tm.gen)
		} else {
			tm.fn()
		}
	}
}

// timerTimeout returns how long the poller may wait for the next timer;
// -1 when no timer is pending.
func (l *Loop) timerTimeout() time.Duration {
	if len(l.timers) == 0 {
		return -1
	}
	return max(time.Duration(l.timers[0].when-mono()), 0)
}
