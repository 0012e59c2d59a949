package server

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// A dateCache formats the Date header once per second, for responses
// written off their loop (see loopDate for the others).
type dateCache struct {
	cur atomic.Pointer[cachedDate]
}

type cachedDate struct {
	sec int64
	val []byte
}

func (d *dateCache) get() []byte {
	now := time.Now()
	sec := now.Unix()
	if c := d.cur.Load(); c != nil && c.sec == sec {
		return c.val
	}
	c := &cachedDate{sec: sec, val: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	d.cur.Store(c)
	return c.val
}

// A loopDate is one loop's Date value. It stays fresh until the loop's
// timer marks it stale at the next second, so a response on the loop reads
// no clock; the timer is armed only when the value is used, so an idle loop
// is not woken for it.
type loopDate struct {
	val     []byte
	fresh   bool
	timer   *fdpoll.Timer
	staleFn func()
}

// get returns the Date value; it must be called on l, and the result
// copied before the next call.
func (d *loopDate) get(l *fdpoll.Loop) []byte {
	if d.fresh {
		return d.val
	}
	now := time.Now()
	d.val = now.UTC().AppendFormat(d.val[:0], http.TimeFormat)
	d.fresh = true
	untilNext := time.Second - time.Duration(now.Nanosecond())
	if d.timer == nil {
		d.staleFn = func() { d.fresh = false }
		d.timer = l.AfterFunc(untilNext, d.staleFn)
	} else {
		d.timer.Reset(untilNext)
	}
	return d.val
}
