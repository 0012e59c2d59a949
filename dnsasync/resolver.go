package dnsasync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/fdpoll"
)

// A Resolver is a stub resolver: it answers from the hosts file, from its
// cache, or by asking the configured recursive servers over UDP (EDNS0,
// TCP when a reply is truncated), on the caller's loop. Its methods return
// futures; await them with fdpoll.Await, which suspends a task and blocks
// a plain goroutine. A Resolver is safe for concurrent use by any number of
// tasks and goroutines, and needs no closing.
type Resolver struct {
	s     *settings
	hosts *hostsFile
	cache *cache
	ids   idSource
	rotor atomic.Uint32
	bufs  sync.Pool // *[]byte: packed queries and received datagrams
	drops [numDropReasons]atomic.Int64

	// Shared UDP sockets, per loop of the group (by Loop.Index).
	udpOnce sync.Once
	udp     []udpSockets
}

// NewResolver returns a resolver configured by cfg, or, with a nil cfg, by
// /etc/resolv.conf and /etc/hosts (falling back to a server on localhost
// when /etc/resolv.conf does not exist).
func NewResolver(cfg *Config) (*Resolver, error) {
	if cfg == nil {
		var err error
		if cfg, err = systemConfig(); err != nil {
			return nil, err
		}
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	r := &Resolver{s: s, hosts: newHostsFile(cfg.HostsFile), cache: newCache(s.cacheSize)}
	// Big enough for a query, and for a reply of the advertised size plus
	// the byte that shows a larger one.
	bufSize := max(512, s.udpSize+1)
	r.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	return r, nil
}

var defaultResolver struct {
	once sync.Once
	r    *Resolver
}

// Default returns the process-wide resolver, configured from
// /etc/resolv.conf and /etc/hosts on first use. If the system configuration
// cannot be read, it asks a server on localhost.
func Default() *Resolver {
	defaultResolver.once.Do(func() {
		r, err := NewResolver(nil)
		if err != nil {
			r, _ = NewResolver(&Config{
				Servers:   []string{"127.0.0.1:53", "[::1]:53"},
				Ndots:     1,
				HostsFile: "/etc/hosts",
			})
		}
		defaultResolver.r = r
	})
	return defaultResolver.r
}

// loopFor returns the loop a lookup started with ctx runs on: the loop of
// ctx's task when it belongs to the resolver's group (no hop between
// loops), else a loop of that group. A lookup, and above all a query shared
// by many lookups, must not depend on the loops of some caller's group,
// which its owner may close.
func (r *Resolver) loopFor(ctx context.Context) *fdpoll.Loop {
	g := r.group()
	if l := fdpoll.LoopOf(ctx); l != nil && l.Group() == g {
		return l
	}
	return g.Next()
}

// runLookup runs a lookup as a task on its loop. A resolver whose group was
// closed fails at once with a *net.DNSError, as every lookup error is,
// rather than fdpoll's ErrClosed.
func runLookup[T any](r *Resolver, ctx context.Context, name string, fn func(context.Context) (T, error)) *fdpoll.Future[T] {
	if r.group().Closed() {
		return fdpoll.Failed[T](&net.DNSError{Err: errResolverClosed, Name: name, UnwrapErr: fdpoll.ErrClosed})
	}
	return fdpoll.Call(r.loopFor(ctx), ctx, fn)
}

func (r *Resolver) group() *fdpoll.Group {
	if r.s.group != nil {
		return r.s.group
	}
	return fdpoll.Default()
}

// resolve returns the answer for k from the cache, or a future of it: the
// query in flight for k if there is one, else a new query started as a
// task on l (or on a loop of the resolver's group). It does not search or
// look in the hosts file.
//
// The query serves every lookup that joins it, so it runs with its own
// context, not the context of the lookup that happened to start it. If its
// task never runs (its loop closed first), its future fails with
// fdpoll.ErrClosed and the flight, done, is replaced by the next lookup.
func (r *Resolver) resolve(l *fdpoll.Loop, k cacheKey, now int64) (*answer, *fdpoll.Future[*answer]) {
	if l.Group() != r.group() {
		l = r.group().Next()
	}
	return r.cache.join(k, now, func() *fdpoll.Future[*answer] {
		return fdpoll.Call(l, context.Background(), func(ctx context.Context) (ans *answer, err error) {
			defer func() {
				if p := recover(); p != nil {
					ans, err = nil, &net.DNSError{Err: fmt.Sprintf("%s: %v", errInternal, p), Name: k.name}
				}
				r.cache.settle(k, ans, err)
			}()
			return r.query(ctx, k.name, k.qtype)
		})
	})
}

// query asks the servers for name and qtype and follows a CNAME chain that
// leaves the reply, by further queries (not joined with other lookups,
// so that two chains leading into each other cannot wait for each other).
// It runs in a task.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	var chain []string
	hops := MaxCNAMEHops
	cur := name
	chainTTL := ^uint32(0)
	for {
		reply, server, err := r.exchange(ctx, r.newQuery(cur, qtype))
		if err != nil {
			return nil, err
		}
		rd, err := r.interpret(reply, cur, qtype, server, chain, hops)
		if err != nil {
			return nil, err
		}
		chainTTL = min(chainTTL, rd.ttl)
		if rd.ans != nil {
			ans := rd.ans
			if cur != name {
				// Cache the end of the chain under its own name, and the
				// whole chain under the name asked.
				r.cache.store(cacheKey{cur, qtype}, ans)
				whole := *ans
				whole.chained = true
				whole.ttl = min(ans.ttl, r.chainTTL(chainTTL))
				ans = &whole
			}
			return ans, nil
		}
		hops -= len(rd.chain) - len(chain)
		chain = rd.chain
		if hops < 0 {
			return nil, serverError(errCNAMETooLong, name, server, false)
		}
		if containsString(chain, rd.chase) {
			return nil, serverError(errCNAMELoop, name, server, false)
		}
		cur = rd.chase
	}
}

// chainTTL bounds how long an answer reached through CNAME records with
// least TTL ttl (seconds) may be cached.
func (r *Resolver) chainTTL(ttl uint32) time.Duration { return r.positiveTTL(ttl) }

// exchangeRaw is Exchange's task: m goes through the same servers,
// failover, EDNS0 and TCP fallback as lookups, without the cache.
func (r *Resolver) exchangeRaw(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	q := m.Copy()
	if q.IsEdns0() == nil {
		q.SetEdns0(uint16(r.s.udpSize), false)
	}
	reply, _, err := r.exchange(ctx, q)
	if reply != nil {
		reply.Id = m.Id
		if err == nil || !isContextError(err) {
			return reply, nil
		}
	}
	return nil, err
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
