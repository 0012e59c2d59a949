package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/yieldio/yieldio/dnsasync"
	"github.com/yieldio/yieldio/fdpoll"
)

// lookupHandler answers GET /lookup?name=example.com&type=A with the
// records found, as JSON. type is A (the default), AAAA, IP (both), CNAME,
// MX, SRV, TXT or PTR (name is then an address). On yieldio's server the
// handler's task suspends while the resolver waits for the DNS server; on
// net/http its goroutine blocks.
//
//	{"name":"example.com","type":"A","answers":["93.184.215.14"],"ms":0.4}
//
// Errors are JSON too: 400 for a bad request, 404 when the name or its
// records do not exist, 504 when the servers did not answer in time, 502
// when they failed.
func lookupHandler(r *dnsasync.Resolver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeLookupJSON(w, http.StatusMethodNotAllowed, lookupError{Error: "method not allowed"})
			return
		}
		name := req.URL.Query().Get("name")
		typ := strings.ToUpper(req.URL.Query().Get("type"))
		if typ == "" {
			typ = "A"
		}
		if name == "" {
			writeLookupJSON(w, http.StatusBadRequest, lookupError{Type: typ, Error: "missing name parameter"})
			return
		}
		start := time.Now()
		answers, err := lookup(req, r, typ, name)
		if errors.Is(err, errUnknownType) {
			writeLookupJSON(w, http.StatusBadRequest, lookupError{Name: name, Type: typ, Error: err.Error()})
			return
		}
		if err != nil {
			var de *net.DNSError
			status := http.StatusBadGateway
			le := lookupError{Name: name, Type: typ, Error: err.Error()}
			if errors.As(err, &de) {
				le.NotFound, le.Timeout, le.Temporary = de.IsNotFound, de.IsTimeout, de.IsTemporary
				switch {
				case de.IsNotFound:
					status = http.StatusNotFound
				case de.IsTimeout:
					status = http.StatusGatewayTimeout
				}
			}
			writeLookupJSON(w, status, le)
			return
		}
		writeLookupJSON(w, http.StatusOK, lookupResult{
			Name: name, Type: typ, Answers: answers,
			Ms: float64(time.Since(start).Microseconds()) / 1000,
		})
	})
}

var errUnknownType = errors.New("unknown type: want A, AAAA, IP, CNAME, MX, SRV, TXT or PTR")

// lookup runs the lookup typ asks for and returns its answers in a form
// fit for JSON.
func lookup(req *http.Request, r *dnsasync.Resolver, typ, name string) (any, error) {
	ctx := req.Context()
	switch typ {
	case "A", "AAAA", "IP":
		network := map[string]string{"A": "ip4", "AAAA": "ip6", "IP": "ip"}[typ]
		addrs, err := fdpoll.Await(ctx, r.LookupNetIP(ctx, network, name))
		if err != nil {
			return nil, err
		}
		out := make([]string, len(addrs))
		for i, a := range addrs {
			out[i] = a.String()
		}
		return out, nil
	case "CNAME":
		cname, err := fdpoll.Await(ctx, r.LookupCNAME(ctx, name))
		return []string{cname}, err
	case "MX":
		mxs, err := fdpoll.Await(ctx, r.LookupMX(ctx, name))
		if err != nil {
			return nil, err
		}
		out := make([]mxAnswer, len(mxs))
		for i, mx := range mxs {
			out[i] = mxAnswer{Host: mx.Host, Pref: mx.Pref}
		}
		return out, nil
	case "SRV":
		srvs, err := fdpoll.Await(ctx, r.LookupSRV(ctx, "", "", name))
		if err != nil {
			return nil, err
		}
		out := make([]srvAnswer, len(srvs))
		for i, s := range srvs {
			out[i] = srvAnswer{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight}
		}
		return out, nil
	case "TXT":
		return fdpoll.Await(ctx, r.LookupTXT(ctx, name))
	case "PTR":
		return fdpoll.Await(ctx, r.LookupAddr(ctx, name))
	}
	return nil, fmt.Errorf("%w (got %q)", errUnknownType, typ)
}

type lookupResult struct {
	Name    string  `json:"name"`
	Type    string  `json:"type"`
	Answers any     `json:"answers"`
	Ms      float64 `json:"ms"`
}

type lookupError struct {
	Name      string `json:"name,omitempty"`
	Type      string `json:"type,omitempty"`
	Error     string `json:"error"`
	NotFound  bool   `json:"not_found,omitempty"`
	Timeout   bool   `json:"timeout,omitempty"`
	Temporary bool   `json:"temporary,omitempty"`
}

type mxAnswer struct {
	Host string `json:"host"`
	Pref uint16 `json:"pref"`
}

type srvAnswer struct {
	Target   string `json:"target"`
	Port     uint16 `json:"port"`
	Priority uint16 `json:"priority"`
	Weight   uint16 `json:"weight"`
}

func writeLookupJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
