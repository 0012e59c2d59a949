package dnsasync

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// nameSeed seeds the hash of names: a name is hashed once per lookup, for
// the shard, the slot of the shard's table and the hosts file's filter.
var nameSeed = maphash.MakeSeed()

// hashName returns the hash of name (resolver form).
func hashName(name string) uint64 { return maphash.String(nameSeed, name) }

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
// from a plain goroutine. It is split into shards by the name's hash; a
// name's answers for every type live in one entry of one shard.
//
// Reading takes no lock. Each shard indexes its entries in an
// open-addressed table of atomic pointers (linear probing, at most half
// full), and an entry holds each answer with its expiry in an immutable
// cachedAnswer that it publishes atomically, so a reader sees an answer
// whole or not at all. Writers (put, evict, flights) hold the shard's
// mutex; a reader that meets a table being changed can miss an entry (it
// is never handed a wrong one: names are compared), and a miss only sends
// the lookup the slow way, where the shard's lock makes it exact. A cached
// LookupHost (A and AAAA) thus costs a hash, a few atomic loads, no store
// in the common case and no allocation.
//
// Eviction is CLOCK (second chance) over names: a hit sets an entry's
// reference bit, and the hand evicts the first entry it meets that is
// expired or was not used since the hand last passed.
type cache struct {
	shards []cacheShard
	shift  uint // a hash's shard is its top bits: h >> shift
}

type cacheShard struct {
	mu      sync.Mutex
	table   atomic.Pointer[entryTable] // nil when caching is off
	ring    []*nameEntry               // entries in CLOCK order; mu
	hand    int                        // mu
	limit   int
	flights map[cacheKey]*fdpoll.Future[*answer] // mu
	_       [64]byte                             // keep shards apart in the processor's caches
}

// An entryTable indexes a shard's entries by hash, with linear probing.
// Slots are changed only under the shard's lock; a table that grows is
// replaced by a new one and no longer changed.
type entryTable struct {
	mask  uint64
	slots []atomic.Pointer[nameEntry]
}

// A nameEntry holds the cached answers for one name. Its name and hash
// never change; its answers are replaced atomically under the shard's lock.
type nameEntry struct {
	hash    uint64
	name    string
	a, aaaa atomic.Pointer[cachedAnswer]
	other   atomic.Pointer[[]typeSlot] // other record types, a few at most; copied on write
	ref     atomic.Bool
	slot    int // index in ring; under the shard's lock
}

// A cachedAnswer is an answer with the time it expires (monoNow clock).
// It is never modified.
type cachedAnswer struct {
	ans     *answer
	expires int64
}

type typeSlot struct {
	qtype uint16
	ca    *cachedAnswer
}

// load returns the cached answer of qtype, valid or not, or nil.
func (e *nameEntry) load(qtype uint16) *cachedAnswer {
	switch qtype {
	case dns.TypeA:
		return e.a.Load()
	case dns.TypeAAAA:
		return e.aaaa.Load()
	}
	if other := e.other.Load(); other != nil {
		for _, sl := range *other {
			if sl.qtype == qtype {
				return sl.ca
			}
		}
	}
	return nil
}

// set replaces the answer of qtype. The shard's lock must be held.
func (e *nameEntry) set(qtype uint16, ca *cachedAnswer) {
	switch qtype {
	case dns.TypeA:
		e.a.Store(ca)
		return
	case dns.TypeAAAA:
		e.aaaa.Store(ca)
		return
	}
	var other []typeSlot
	if old := e.other.Load(); old != nil {
		other = make([]typeSlot, 0, len(*old)+1)
		for _, sl := range *old {
			if sl.qtype != qtype {
				other = append(other, sl)
			}
		}
	}
	other = append(other, typeSlot{qtype, ca})
	e.other.Store(&other)
}

// touch sets the reference bit, without a store (and its cache-line
// transfer) on a hot entry whose bit is set already.
func (e *nameEntry) touch() {
	if !e.ref.Load() {
		e.ref.Store(true)
	}
}

// live reports whether any answer of e is still valid at now.
func (e *nameEntry) live(now int64) bool {
	for _, ca := range [2]*cachedAnswer{e.a.Load(), e.aaaa.Load()} {
		if ca != nil && ca.expires > now {
			return true
		}
	}
	if other := e.other.Load(); other != nil {
		for _, sl := range *other {
			if sl.ca.expires > now {
				return true
			}
		}
	}
	return false
}

// newCache returns a cache of at most size names; size < 0 keeps none.
func newCache(size int) *cache {
	n, bits := 1, uint(0)
	for n < 32 && size/(n*2) >= 256 {
		n *= 2
		bits++
	}
	c := &cache{shards: make([]cacheShard, n), shift: 64 - bits}
	for i := range c.shards {
		s := &c.shards[i]
		s.flights = make(map[cacheKey]*fdpoll.Future[*answer])
		if size > 0 {
			s.limit = size / n
			s.table.Store(newEntryTable(8))
		}
	}
	return c
}

// shard returns the shard of a name of hash h.
func (c *cache) shard(h uint64) *cacheShard {
	return &c.shards[h>>c.shift] // a shift by 64 (one shard) gives 0
}

func newEntryTable(size int) *entryTable {
	return &entryTable{mask: uint64(size - 1), slots: make([]atomic.Pointer[nameEntry], size)}
}

// find returns the entry for name, of hash h, or nil. Without the shard's
// lock it may miss an entry that a writer is moving.
func (s *cacheShard) find(name string, h uint64) *nameEntry {
	t := s.table.Load()
	if t == nil {
		return nil
	}
	i := h & t.mask
	for range t.slots {
		e := t.slots[i].Load()
		if e == nil {
			return nil
		}
		if e.hash == h && e.name == name {
			return e
		}
		i = (i + 1) & t.mask
	}
	return nil
}

// insert adds e, which is not in the table, growing the table when it
// would be more than half full. s.mu must be held.
func (s *cacheShard) insert(e *nameEntry) {
	t := s.table.Load()
	if 2*len(s.ring) > len(t.slots) { // the ring holds e already
		// Build the new table whole before readers see it.
		t = newEntryTable(2 * len(t.slots))
		for _, x := range s.ring {
			t.place(x)
		}
		s.table.Store(t)
		return
	}
	t.place(e)
}

// place stores e in the first free slot from its home.
func (t *entryTable) place(e *nameEntry) {
	i := e.hash & t.mask
	for t.slots[i].Load() != nil {
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(e)
}

// remove takes e out of the table, shifting the entries after it that
// probed past its slot back, so that no tombstones are needed. A reader
// probing concurrently sees each entry at its old slot, its new one or
// both, so it may miss it but never finds a wrong one. s.mu must be held.
func (s *cacheShard) remove(e *nameEntry) {
	t := s.table.Load()
	i := e.hash & t.mask
	for n := 0; t.slots[i].Load() != e; n++ {
		if n == len(t.slots) {
			panic("dnsasync: a cache entry is missing from its shard's table")
		}
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		x := t.slots[j].Load()
		if x == nil {
			break
		}
		// x may fill the hole at i unless its home slot lies cyclically
		// in (i, j]: then i is before its home and a probe would not meet
		// it there.
		if home := x.hash & t.mask; (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i].Store(x)
			i = j
		}
	}
	t.slots[i].Store(nil)
}

// lookup returns the valid answer for k in s, or nil.
func (s *cacheShard) lookup(k cacheKey, h uint64, now int64) *answer {
	e := s.find(k.name, h)
	if e == nil {
		return nil
	}
	ca := e.load(k.qtype)
	if ca == nil || ca.expires <= now {
		return nil
	}
	e.touch()
	return ca.ans
}

// get returns the cached answer for k, or nil. It takes no lock.
func (c *cache) get(k cacheKey, now int64) *answer {
	h := hashName(k.name)
	return c.shard(h).lookup(k, h, now)
}

// getAll looks up name, of hash h, for every type of qtypes and reports
// whether all were cached and valid at now. It takes no lock, and it may
// miss an entry that a writer is moving. The types are read one by one, so
// an answer of one type may be older than another's (both valid).
func (c *cache) getAll(name string, h uint64, qtypes []uint16, now int64, out *answers) bool {
	e := c.shard(h).find(name, h)
	if e == nil {
		return false
	}
	for i, t := range qtypes {
		ca := e.load(t)
		if ca == nil || ca.expires <= now {
			return false
		}
		out[i] = ca.ans
	}
	e.touch()
	return true
}

// join returns the cached answer for k, or the future of the query in
// flight for it, or, when there is neither, a new future that the caller
// (the leader) must complete through finish.
func (c *cache) join(k cacheKey, now int64, start func() *fdpoll.Future[*answer]) (*answer, *fdpoll.Future[*answer]) {
	h := hashName(k.name)
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ans := s.lookup(k, h, now); ans != nil {
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
	h := hashName(k.name)
	s := c.shard(h)
	s.mu.Lock()
	delete(s.flights, k)
	if err == nil && ans != nil && ans.ttl > 0 {
		s.put(k, h, ans, monoNow()+int64(ans.ttl))
	}
	s.mu.Unlock()
}

// store caches ans for k without a flight (answers met while following a
// CNAME chain).
func (c *cache) store(k cacheKey, ans *answer) {
	if ans == nil || ans.ttl <= 0 {
		return
	}
	h := hashName(k.name)
	s := c.shard(h)
	s.mu.Lock()
	s.put(k, h, ans, monoNow()+int64(ans.ttl))
	s.mu.Unlock()
}

// put inserts or replaces the answer for k, of hash h. s.mu must be held.
func (s *cacheShard) put(k cacheKey, h uint64, ans *answer, expires int64) {
	if s.limit <= 0 {
		return
	}
	e := s.find(k.name, h)
	if e == nil {
		e = &nameEntry{hash: h, name: k.name}
		if len(s.ring) < s.limit {
			e.slot = len(s.ring)
			s.ring = append(s.ring, e)
		} else {
			old := s.evict()
			s.remove(old)
			e.slot = old.slot
			s.ring[e.slot] = e
		}
		s.insert(e)
	}
	e.set(k.qtype, &cachedAnswer{ans: ans, expires: expires})
}

// evict returns the entry under the CLOCK hand, which the caller replaces:
// the first one that is expired or was not used since the hand last passed
// it. Hits set reference bits without the shard's lock, so readers can keep
// setting them behind the hand; after two full turns the hand takes the
// entry it is on, used or not, so that eviction (and the lock it holds) is
// bounded.
func (s *cacheShard) evict() *nameEntry {
	e, _ := s.evictCounting()
	return e
}

// evictCounting is evict, also reporting how many entries the hand passed.
func (s *cacheShard) evictCounting() (*nameEntry, int) {
	now := monoNow()
	for steps := 1; ; steps++ {
		e := s.ring[s.hand]
		s.hand++
		if s.hand == len(s.ring) {
			s.hand = 0
		}
		if steps <= 2*len(s.ring) && e.ref.Load() && e.live(now) {
			e.ref.Store(false)
			continue
		}
		return e, steps
	}
}

// len returns the number of names cached, expired or not.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.ring)
		s.mu.Unlock()
	}
	return n
}
