package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/dnsasync"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/dnstest"
	"github.com/yieldio/yieldio/server"
)

// The lookup endpoint against a real NSD serving the test zone, on
// yieldio's server (the handler's task suspends) and on net/http (its
// goroutine blocks).
func TestLookupHandler(t *testing.T) {
	nsd := dnstest.NSD(t)
	fault := dnstest.Fault(t)
	fault.SetHandler(dnstest.Drop)
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{nsd.Addr}, Timeout: 5 * time.Second, Group: g})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := dnsasync.NewResolver(&dnsasync.Config{Servers: []string{fault.Addr}, Timeout: 100 * time.Millisecond, Attempts: 1, Group: g})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/lookup", lookupHandler(res))
	mux.Handle("/dead/lookup", lookupHandler(dead))

	s := &server.Server{Addr: "127.0.0.1:0", Handler: mux, Group: g}
	go s.ListenAndServe()
	defer s.Close()
	for len(s.Addrs()) == 0 {
		time.Sleep(time.Millisecond)
	}
	std := httptest.NewServer(mux)
	defer std.Close()

	for name, base := range map[string]string{"yieldio": "http://" + s.Addrs()[0].String(), "net/http": std.URL} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{Timeout: 20 * time.Second}
			get := func(method, path string) (int, map[string]any) {
				req, _ := http.NewRequest(method, base+path, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("%s: Content-Type %q", path, ct)
				}
				var v map[string]any
				if err := json.Unmarshal(b, &v); err != nil {
					t.Fatalf("%s: %v: %q", path, err, b)
				}
				return resp.StatusCode, v
			}
			answers := func(v map[string]any) string {
				b, _ := json.Marshal(v["answers"])
				return string(b)
			}
			for _, c := range []struct{ query, want string }{
				{"name=host.example.test", `["192.0.2.1","192.0.2.2"]`},
				{"name=host.example.test&type=aaaa", `["2001:db8::1","2001:db8::2"]`},
				{"name=v4only.example.test&type=IP", `["192.0.2.10"]`},
				{"name=www.example.test&type=CNAME", `["host.example.test."]`},
				{"name=mail.example.test&type=MX", `[{"host":"host.example.test.","pref":10},{"host":"v4only.example.test.","pref":20}]`},
				{"name=_sip._tcp.example.test&type=SRV", `{"port":5062,"priority":20,"target":"v6only.example.test.","weight":0}`},
				{"name=txt.example.test&type=TXT", `"hello world"`},
				{"name=192.0.2.1&type=PTR", `["host.example.test."]`},
			} {
				code, v := get("GET", "/lookup?"+c.query)
				if code != 200 || !strings.Contains(answers(v), c.want) {
					t.Errorf("%s: %d %v, want %s", c.query, code, v, c.want)
				}
			}
			if code, v := get("GET", "/lookup?name=missing.example.test"); code != 404 || v["not_found"] != true {
				t.Errorf("missing: %d %v", code, v)
			}
			if code, v := get("GET", "/dead/lookup?name=host.example.test"); code != 504 || v["timeout"] != true {
				t.Errorf("dead server: %d %v", code, v)
			}
			if code, _ := get("GET", "/lookup"); code != 400 {
				t.Errorf("no name: %d", code)
			}
			if code, _ := get("GET", "/lookup?name=x.test&type=BOGUS"); code != 400 {
				t.Errorf("bad type: %d", code)
			}
			if code, _ := get("POST", "/lookup?name=x.test"); code != 405 {
				t.Errorf("POST: %d", code)
			}
		})
	}
}
