package dnsasync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
)

// The integration tests ask a real DNS server on a loopback port, started
// by dnstest with the static test zones: NSD (authoritative: AA set, CNAME
// chains leaving a zone end in the reply, so the resolver follows them with
// another query) and Unbound in front of NSD (recursive: RA set, chains
// followed by the server). Every answer is compared with Go's own resolver
// (net.Resolver, pure Go) pointed at the same server.

func TestIntegrationNSD(t *testing.T) {
	runIntegration(t, dnstest.NSD(t))
}

func TestIntegrationUnbound(t *testing.T) {
	runIntegration(t, dnstest.Unbound(t))
}

func runIntegration(t *testing.T, srv *dnstest.Server) {
	g := newGroup(t, 2)
	nr := goResolver(srv.Addr)
	t.Run("goroutine", func(t *testing.T) {
		r := newResolver(t, g, []string{srv.Addr}, nil)
		compareAll(t, testCtx(t), r, nr, srv.Name)
	})
	t.Run("task", func(t *testing.T) {
		r := newResolver(t, g, []string{srv.Addr}, nil)
		inTask(t, g.Loop(1), func(ctx context.Context) { compareAll(t, ctx, r, nr, srv.Name) })
	})
	t.Run("cached", func(t *testing.T) {
		// Everything twice: the second time from the cache.
		r := newResolver(t, g, []string{srv.Addr}, nil)
		compareAll(t, testCtx(t), r, nr, srv.Name)
		compareAll(t, testCtx(t), r, nr, srv.Name)
	})
	t.Run("tcp", func(t *testing.T) {
		r := newResolver(t, g, []string{srv.Addr}, func(c *Config) { c.UseTCP = true })
		compareAll(t, testCtx(t), r, nr, srv.Name)
	})
}

// goResolver returns Go's pure-Go resolver, sending every query to addr.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func compareAll(t *testing.T, ctx context.Context, r *Resolver, nr *net.Resolver, server string) {
	t.Helper()
	for _, host := range []string{dnstest.Host, dnstest.WWW, dnstest.Alias2, dnstest.External,
		dnstest.V4Only, dnstest.V6Only, "Host.Example.Test.", "x.y." + dnstest.Wild} {
		for _, network := range []string{"ip", "ip4", "ip6"} {
			got, err := fdpoll.Await(ctx, r.LookupNetIP(ctx, network, host))
			want, werr := nr.LookupNetIP(ctx, network, host)
			sameAddrs(t, fmt.Sprintf("LookupNetIP(%s, %s)", network, host), got, err, want, werr)
		}
		got, err := fdpoll.Await(ctx, r.LookupHost(ctx, host))
		want, werr := nr.LookupNetIP(ctx, "ip", host)
		sameAddrs(t, "LookupHost("+host+")", got, err, want, werr)

		cname, err := fdpoll.Await(ctx, r.LookupCNAME(ctx, host))
		wcname, werr := nr.LookupCNAME(ctx, host)
		if host == dnstest.Alias2 {
			// Two CNAME hops in one reply: Go's resolver returns the first
			// hop's target or the end of the chain, depending on which of
			// its parallel queries (A, AAAA, CNAME) it reads first; the
			// canonical name is the end of the chain (RFC 1034 3.6.2).
			wcname = dnstest.Host + "."
		}
		if err != nil || werr != nil || !strings.EqualFold(cname, wcname) {
			t.Errorf("%s: LookupCNAME(%s) = %q, %v; net: %q, %v", server, host, cname, err, wcname, werr)
		}
	}

	// SRV, by priority then weight, compared as sets within a priority.
	srvs, err := fdpoll.Await(ctx, r.LookupSRV(ctx, "sip", "tcp", "example.test"))
	_, wsrvs, werr := nr.LookupSRV(ctx, "sip", "tcp", "example.test")
	if err != nil || werr != nil || len(srvs) != 3 || srvKey(srvs) != srvKey(wsrvs) {
		t.Errorf("%s: LookupSRV = %v, %v; net: %v, %v", server, srvKey(srvs), err, srvKey(wsrvs), werr)
	}
	if !slices.IsSortedFunc(srvs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) }) {
		t.Errorf("%s: SRV records not by priority: %v", server, srvs)
	}

	mxs, err := fdpoll.Await(ctx, r.LookupMX(ctx, dnstest.Mail))
	wmxs, werr := nr.LookupMX(ctx, dnstest.Mail)
	if err != nil || werr != nil || mxKey(mxs) != mxKey(wmxs) || len(mxs) != 2 || mxs[0].Pref > mxs[1].Pref {
		t.Errorf("%s: LookupMX = %s, %v; net: %s, %v", server, mxKey(mxs), err, mxKey(wmxs), werr)
	}

	for _, name := range []string{dnstest.TXT, dnstest.BigTXT} {
		txts, err := fdpoll.Await(ctx, r.LookupTXT(ctx, name))
		wtxts, werr := nr.LookupTXT(ctx, name)
		sort.Strings(txts)
		sort.Strings(wtxts)
		if err != nil || werr != nil || !slices.Equal(txts, wtxts) || len(txts) < 2 {
			t.Errorf("%s: LookupTXT(%s) = %q, %v; net: %q, %v", server, name, txts, err, wtxts, werr)
		}
	}

	names, err := fdpoll.Await(ctx, r.LookupAddr(ctx, dnstest.HostReverse))
	wnames, werr := nr.LookupAddr(ctx, dnstest.HostReverse)
	if err != nil || werr != nil || !slices.Equal(names, wnames) {
		t.Errorf("%s: LookupAddr = %q, %v; net: %q, %v", server, names, err, wnames, werr)
	}

	// Names that do not exist, and names without records of the type.
	for _, c := range []struct {
		what string
		f    func() error
		net  func() error
	}{
		{"LookupHost(missing)", func() error { _, err := fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Missing)); return err },
			func() error { _, err := nr.LookupNetIP(ctx, "ip", dnstest.Missing); return err }},
		{"LookupNetIP(ip6, v4only)", func() error { _, err := fdpoll.Await(ctx, r.LookupNetIP(ctx, "ip6", dnstest.V4Only)); return err },
			func() error { _, err := nr.LookupNetIP(ctx, "ip6", dnstest.V4Only); return err }},
		{"LookupMX(host)", func() error { _, err := fdpoll.Await(ctx, r.LookupMX(ctx, dnstest.Host)); return err },
			func() error { _, err := nr.LookupMX(ctx, dnstest.Host); return err }},
		{"LookupTXT(missing)", func() error { _, err := fdpoll.Await(ctx, r.LookupTXT(ctx, dnstest.Missing)); return err },
			func() error { _, err := nr.LookupTXT(ctx, dnstest.Missing); return err }},
		{"LookupCNAME(missing)", func() error { _, err := fdpoll.Await(ctx, r.LookupCNAME(ctx, dnstest.Missing)); return err },
			func() error { _, err := nr.LookupCNAME(ctx, dnstest.Missing); return err }},
		{"LookupAddr(192.0.2.99)", func() error { _, err := fdpoll.Await(ctx, r.LookupAddr(ctx, "192.0.2.99")); return err },
			func() error { _, err := nr.LookupAddr(ctx, "192.0.2.99"); return err }},
	} {
		err, werr := c.f(), c.net()
		var de, wde *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound || !errors.As(werr, &wde) || !wde.IsNotFound {
			t.Errorf("%s: %s = %v; net: %v; want both not found", server, c.what, err, werr)
		}
	}

	// A CNAME loop is an error, but not "not found".
	_, err = fdpoll.Await(ctx, r.LookupHost(ctx, dnstest.Loop1))
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound {
		t.Errorf("%s: LookupHost(loop) = %v, want an error other than not found", server, err)
	}
}

func sameAddrs(t *testing.T, what string, got []netip.Addr, err error, want []netip.Addr, werr error) {
	t.Helper()
	if (err == nil) != (werr == nil) {
		t.Errorf("%s = %v, %v; net: %v, %v", what, got, err, want, werr)
		return
	}
	if err != nil {
		var de, wde *net.DNSError
		if !errors.As(err, &de) || !errors.As(werr, &wde) || de.IsNotFound != wde.IsNotFound {
			t.Errorf("%s: error %v; net: %v", what, err, werr)
		}
		return
	}
	for i := range want {
		want[i] = want[i].Unmap()
	}
	g, w := slices.Clone(got), slices.Clone(want)
	slices.SortFunc(g, netip.Addr.Compare)
	slices.SortFunc(w, netip.Addr.Compare)
	if !slices.Equal(g, w) {
		t.Errorf("%s = %v; net: %v", what, got, want)
	}
	// IPv4 first, then IPv6.
	if !slices.IsSortedFunc(got, func(a, b netip.Addr) int { return a.BitLen() - b.BitLen() }) {
		t.Errorf("%s = %v: IPv4 not first", what, got)
	}
}

func srvKey(s []*net.SRV) string {
	var keys []string
	for _, x := range s {
		keys = append(keys, fmt.Sprintf("%d/%d/%d/%s", x.Priority, x.Weight, x.Port, strings.ToLower(x.Target)))
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

func mxKey(s []*net.MX) string {
	var keys []string
	for _, x := range s {
		keys = append(keys, fmt.Sprintf("%d/%s", x.Pref, strings.ToLower(x.Host)))
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
