package dnsasync

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// epoch anchors the monotonic clock used for cache expiry.
var epoch = time.Now()

// monoNow returns monotonic nanoseconds since epoch.
func monoNow() int64 { return int64(time.Since(epoch)) }

// A cacheKey names one answer: a name in resolver form and a record type.
type cacheKey struct {
	name  string
	qtype uint16
}

// The cache holds answers by name and type until their TTL passes, and the
// queries in flight, so that concurrent identical lookups share one query.
//
// It is shared by every loop and goroutine that uses the resolver: one
// query per name for the whole process, and the same cost from a task and
// from a plain goroutine. It is split into shards, each under its own
// mutex; a name's answers for every type live in one entry of one shard, so
// a cached LookupHost (A and AAAA) costs one uncontended lock, one map
// lookup and no allocation. Eviction is CLOCK (second chance) over names: a
// hit sets an entry's reference bit, and the hand evicts the first entry it
// meets that is expired or was not used since the hand last passed.
type cache struct {
	seed   maphash.Seed
	shards []cacheShard
	mask   uint64
}

type cacheShard struct {
	mu      sync.Mutex
	entries map[string]*nameEntry // nil when caching is off
	ring    []*nameEntry          // entries in CLOCK order
	hand    int
	limit   int
	flights map[cacheKey]*fdpoll.Future[*answer]
	_       [32]byte // keep shards' locks on separate cache lines
}

// A nameEntry holds the cached answers for one name.
type nameEntry struct {
	name    string
	a, aaaa typeSlot
	other   []typeSlot // other record types: a few at most
	ref     bool
	slot    int // index in ring
}

type typeSlot struct {
	qtype   uint16
	ans     *answer
	expires int64
}

// find returns the slot of qtype, or nil; with add it makes one.
func (e *nameEntry) find(qtype uint16, add bool) *typeSlot {
	switch qtype {
	case dns.TypeA:
		return &e.a
	case dns.TypeAAAA:
		return &e.aaaa
	}
	for i := range e.other {
		if e.other[i].qtype == qtype {
			return &e.other[i]
		}
	}
	if !add {
		return nil
	}
	e.other = append(e.other, typeSlot{qtype: qtype})
	return &e.other[len(e.other)-1]
}

// live reports whether any answer of e is still valid at now.
func (e *nameEntry) live(now int64) bool {
	if e.a.expires > now || e.aaaa.expires > now {
		return true
	}
	for _, sl := range e.other {
		if sl.expires > now {
			return true
		}
	}
	return false
}

// newCache returns a cache of at most size names; size < 0 keeps none.
func newCache(size int) *cache {
	n := 1
	for n < 32 && size/(n*2) >= 256 {
		n *= 2
	}
	c := &cache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n), mask: uint64(n - 1)}
	for i := range c.shards {
		s := &c.shards[i]
		s.flights = make(map[cacheKey]*fdpoll.Future[*answer])
		if size > 0 {
			s.limit = size / n
			s.entries = make(map[string]*nameEntry)
		}
	}
	return c
}

func (c *cache) shard(name string) *cacheShard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, name)&c.mask]
}

// lookup returns the valid answer for k in s, or nil. s.mu must be held.
func (s *cacheShard) lookup(k cacheKey, now int64) *answer {
	e := s.entries[k.name]
	if e == nil {
		return nil
	}
	sl := e.find(k.qtype, false)
	if sl == nil || sl.expires <= now {
		return nil
	}
	if !e.ref { // no store, no cache-line transfer, on a hot entry
		e.ref = true
	}
	return sl.ans
}

// get returns the cached answer for k, or nil.
func (c *cache) get(k cacheKey, now int64) *answer {
	s := c.shard(k.name)
	s.mu.Lock()
	ans := s.lookup(k, now)
	s.mu.Unlock()
	return ans
}

// getAll looks up name for every type of qtypes under one lock and reports
// whether all were cached.
func (c *cache) getAll(name string, qtypes []uint16, now int64, out *answers) bool {
	s := c.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return false
	}
	for i, t := range qtypes {
		sl := e.find(t, false)
		if sl == nil || sl.expires <= now {
			return false
		}
		out[i] = sl.ans
	}
	if !e.ref { // no store, no cache-line transfer, on a hot entry
		e.ref = true
	}
	return true
}

// join returns the cached answer for k, or the future of the query in
// flight for it, or, when there is neither, a new future that the caller
// (the leader) must complete through finish.
func (c *cache) join(k cacheKey, now int64, start func() *fdpoll.Future[*answer]) (*answer, *fdpoll.Future[*answer]) {
	s := c.shard(k.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ans := s.lookup(k, now); ans != nil {
		return ans, nil
	}
	// A done flight is left over from a query whose task never ran (its
	// loop closed): start afresh.
	if f := s.flights[k]; f != nil && !f.Done() {
		return nil, f
	}
	f := start()
	s.flights[k] = f
	return nil, f
}

// settle ends the flight for k from inside its query: the answer is cached
// if it may be and the flight is forgotten; the query's future completes
// when its task returns. While a query runs, its flight is the only one for
// k (a flight is replaced only once done), so the one in the map is its own.
func (c *cache) settle(k cacheKey, ans *answer, err error) {
	s := c.shard(k.name)
	s.mu.Lock()
	delete(s.flights, k)
	if err == nil && ans != nil && ans.ttl > 0 {
		s.put(k, ans, monoNow()+int64(ans.ttl))
	}
	s.mu.Unlock()
}

// store caches ans for k without a flight (answers met while following a
// CNAME chain).
func (c *cache) store(k cacheKey, ans *answer) {
	if ans == nil || ans.ttl <= 0 {
		return
	}
	s := c.shard(k.name)
	s.mu.Lock()
	s.put(k, ans, monoNow()+int64(ans.ttl))
	s.mu.Unlock()
}

// put inserts or replaces the answer for k. s.mu must be held.
func (s *cacheShard) put(k cacheKey, ans *answer, expires int64) {
	if s.entries == nil || s.limit <= 0 {
		return
	}
	e := s.entries[k.name]
	if e == nil {
		e = &nameEntry{name: k.name}
		if len(s.ring) < s.limit {
			e.slot = len(s.ring)
			s.ring = append(s.ring, e)
		} else {
			e.slot = s.evict().slot
			s.ring[e.slot] = e
		}
		s.entries[k.name] = e
	}
	sl := e.find(k.qtype, true)
	sl.ans, sl.expires = ans, expires
}

// evict removes and returns the entry under the CLOCK hand: the first one
// that is expired or was not used since the hand last passed it.
func (s *cacheShard) evict() *nameEntry {
	now := monoNow()
	for {
		e := s.ring[s.hand]
		s.hand++
		if s.hand == len(s.ring) {
			s.hand = 0
		}
		if e.ref && e.live(now) {
			e.ref = false
			continue
		}
		delete(s.entries, e.name)
		return e
	}
}

// len returns the number of names cached, expired or not.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}
