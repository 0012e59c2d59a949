package dnsasync

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// TestNoLeaks runs lookups that succeed, time out, are cancelled, fall
// back to TCP and meet forged replies, from tasks and goroutines, then
// closes everything: no goroutine and no fd may be left (newGroup checks
// the fds).
func TestNoLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Run("lookups", func(t *testing.T) {
		g := newGroup(t, 2)
		srv := dnstest.Fault(t)
		srv.SetHandler(func(x *dnstest.Exchange) {
			switch x.Req.Question[0].Name {
			case "dropped.example.test.":
			case dnstest.BigTXT + ".":
				dnstest.Truncate(x)
			default:
				dnstest.Then(dnstest.WrongID, dnstest.Malformed, dnstest.Answer)(x)
			}
		})
		r := newResolver(t, g, []string{srv.Addr}, func(c *Config) { c.Timeout = 100 * time.Millisecond; c.CacheSize = -1 })
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if i%4 == 3 {
					// Cancelled while the query is in flight.
					c2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
					defer cancel2()
					ctx = c2
				}
				run := func(ctx context.Context) {
					fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Host))
					fdpoll.Await(ctx, r.LookupHost(ctx, "dropped.example.test"))
					fdpoll.Await(ctx, r.LookupTXT(ctx, dnstest.BigTXT))
				}
				if i%2 == 0 {
					run(ctx)
					return
				}
				fdpoll.Await(ctx, g.Loop(i%2).Spawn(ctx, func(ctx context.Context) error { run(ctx); return nil }))
			}()
		}
		wg.Wait()
	})
	// The group and the server are closed: what is left is the test's.
	goroutinesSettle(t, base)
}
