package server

import (
	"net/http"
	"sync/atomic"
	"time"
)

// A dateCache formats the Date header once per second.
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
