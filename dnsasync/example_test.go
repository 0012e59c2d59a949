package dnsasync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/miekg/dns"
	"github.com/yieldio/yieldio/dnsasync"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// The examples ask an in-process DNS server serving a test zone; a
// program would use dnsasync.Default() (the system's resolv.conf) or
// NewResolver with its own servers.
func exampleServer() (addr string, stop func()) {
	srv, err := dnstest.StartFaultServer()
	if err != nil {
		log.Fatal(err)
	}
	return srv.Addr, func() { srv.Close() }
}

// Lookups return futures. Awaited in a plain goroutine (a net/http
// handler, main), Await blocks; in a task it suspends the task instead.
func ExampleResolver_LookupHost() {
	addr, stop := exampleServer()
	defer stop()
	r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{addr}, Timeout: 2 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, "host.example.test"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(addrs)
	// Output: [192.0.2.1 192.0.2.2 2001:db8::1 2001:db8::2]
}

// In a task, several lookups run at once on the task's loop while the task
// waits for all of them.
func ExampleResolver_LookupHost_inTask() {
	addr, stop := exampleServer()
	defer stop()
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{addr}, Group: g})
	if err != nil {
		log.Fatal(err)
	}
	done := g.Spawn(context.Background(), func(ctx context.Context) error {
		a := r.LookupNetIP(ctx, "ip4", "v4only.example.test")
		b := r.LookupNetIP(ctx, "ip6", "v6only.example.test")
		mx := r.LookupMX(ctx, "mail.example.test")
		if err := fdpoll.WaitAll(ctx, a, b, mx); err != nil {
			return err
		}
		fmt.Println(a.Result())
		fmt.Println(b.Result())
		mxs, err := mx.Result()
		if err != nil {
			return err
		}
		for _, m := range mxs {
			fmt.Println(m.Pref, m.Host)
		}
		return nil
	})
	if _, err := fdpoll.Await(context.Background(), done); err != nil {
		log.Fatal(err)
	}
	// Output:
	// [192.0.2.10] <nil>
	// [2001:db8::10] <nil>
	// 10 host.example.test.
	// 20 v4only.example.test.
}

// Errors are *net.DNSError values, as from net.Resolver.
func ExampleResolver_LookupHost_notFound() {
	addr, stop := exampleServer()
	defer stop()
	r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	_, err = fdpoll.Await(ctx, r.LookupHost(ctx, "missing.example.test"))
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		fmt.Println("not found:", de.Name)
	}
	// Output: not found: missing.example.test
}

func ExampleResolver_LookupSRV() {
	addr, stop := exampleServer()
	defer stop()
	r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	srvs, err := fdpoll.Await(ctx, r.LookupSRV(ctx, "sip", "tcp", "example.test"))
	if err != nil {
		log.Fatal(err)
	}
	// By priority; within one priority the order is random, by weight.
	fmt.Println(len(srvs), srvs[0].Priority, srvs[2].Priority, srvs[2].Target, srvs[2].Port)
	// Output: 3 10 20 v6only.example.test. 5062
}

// Exchange sends any query through the resolver's servers, failover and
// TCP fallback, and returns the reply as it came.
func ExampleResolver_Exchange() {
	addr, stop := exampleServer()
	defer stop()
	r, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	ctx := context.Background()
	reply, err := fdpoll.Await(ctx, r.Exchange(ctx, m))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dns.RcodeToString[reply.Rcode], len(reply.Answer))
	for _, rr := range reply.Answer {
		fmt.Println(rr.Header().Name, dns.TypeToString[rr.Header().Rrtype])
	}
	// Output:
	// NOERROR 3
	// www.example.test. CNAME
	// host.example.test. A
	// host.example.test. A
}

// Names in the hosts file, IP literals and localhost are answered without
// a query.
func ExampleNewResolver() {
	r, err := dnsasync.NewResolver(&dnsasync.Config{
		Servers: []string{"192.0.2.53"}, // never asked below
		Search:  []string{"corp.example"},
		Ndots:   1,
		Timeout: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, host := range []string{"localhost", "198.51.100.7", "2001:db8::7"} {
		addrs, err := fdpoll.Await(ctx, r.LookupHost(ctx, host))
		fmt.Println(host, addrs, err)
	}
	// Output:
	// localhost [127.0.0.1 ::1] <nil>
	// 198.51.100.7 [198.51.100.7] <nil>
	// 2001:db8::7 [2001:db8::7] <nil>
}
