// Package dnsasync is a stub resolver whose lookups return futures. It
// speaks DNS (messages from github.com/miekg/dns) over its own
// non-blocking UDP and TCP sockets on yieldio's loops, so a task waiting
// for an answer suspends and its loop runs other work meanwhile; in a
// plain goroutine the same call blocks.
//
//	addrs, err := fdpoll.Await(ctx, dnsasync.Default().LookupHost(ctx, "example.com"))
//
// What it does, in the order a lookup meets it:
//
//   - IP literals are answered without a query, names in the hosts file
//     from it (the file is re-read when it changes), and "localhost" and
//     names under it with the loopback addresses (RFC 6761).
//   - Answers are cached by name and type for their TTL (clamped to
//     Config.MinTTL and MaxTTL); negative answers for the SOA minimum (RFC
//     2308). Concurrent identical lookups share one query. A cached lookup
//     costs no allocation beyond its result.
//   - Queries go to the configured servers (resolv.conf: nameserver,
//     search, ndots, timeout, attempts, rotate) over UDP with EDNS0 and a
//     1232-byte buffer; again without EDNS0 after a FORMERR; over TCP when
//     the reply is truncated. Each server has its own timeout per try; a
//     server that times out, fails or refuses is passed over.
//   - Against spoofing, each try uses an ID from crypto/rand and goes out
//     on a connected UDP socket with a random source port (the kernel drops
//     datagrams from any other address or port), and a reply is believed
//     only with the same ID and the same question. A malformed, oversized
//     or forged datagram is dropped and the try keeps waiting. The queries
//     a loop has in flight to one server share a socket, which closes when
//     none waits on it and carries at most Config.UDPQueriesPerSocket
//     queries (64 by default; 1 gives each query its own port).
//   - CNAME chains are followed, across replies when needed, up to
//     MaxCNAMEHops and never round a loop.
//
// Errors are *net.DNSError values, so code written for net.Resolver keeps
// working: IsNotFound for a missing name or a name without records of the
// type asked, IsTimeout when every try timed out, IsTemporary for a server
// failure.
package dnsasync
