package dnsasync

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestConfigFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte(`# test
nameserver 192.0.2.53
nameserver 2001:db8::53
nameserver not.numeric.test
search corp.test example.test
options ndots:2 timeout:3 attempts:4 rotate use-vc
`), 0o644)
	cfg, err := ConfigFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !slices.Equal(cfg.Servers, want) {
		t.Errorf("Servers = %q, want %q", cfg.Servers, want)
	}
	if want := []string{"corp.test", "example.test"}; !slices.Equal(cfg.Search, want) {
		t.Errorf("Search = %q", cfg.Search)
	}
	if cfg.Ndots != 2 || cfg.Timeout != 3*time.Second || cfg.Attempts != 4 || !cfg.Rotate || !cfg.UseTCP || cfg.HostsFile != "/etc/hosts" {
		t.Errorf("config %+v", cfg)
	}

	os.WriteFile(p, []byte("domain corp.test\n"), 0o644)
	cfg, err = ConfigFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Servers, []string{"127.0.0.1:53", "[::1]:53"}) || cfg.Ndots != 1 || cfg.Rotate {
		t.Errorf("defaults: %+v", cfg)
	}
	if _, err := ConfigFromFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file gave no error")
	}
}

func TestNewResolverNil(t *testing.T) {
	r, err := NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.s.servers) == 0 || r.hosts.path != "/etc/hosts" {
		t.Errorf("system resolver: %+v", r.s)
	}
	if Default() == nil || Default() != Default() {
		t.Error("Default is not one resolver")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, bad := range [][]string{nil, {"dns.example.test:53"}, {"192.0.2.1:0"}, {"192.0.2.1:99999"}, {""}} {
		if _, err := NewResolver(&Config{Servers: bad}); err == nil {
			t.Errorf("Servers %q accepted", bad)
		}
	}
	// A search domain that is not a valid name is skipped, not fatal: one
	// odd line in resolv.conf must not cost the resolver its servers.
	if r, err := NewResolver(&Config{Servers: []string{"192.0.2.1"}, Search: []string{"bad domain", "good.example"}}); err != nil {
		t.Errorf("a bad search domain failed the config: %v", err)
	} else if len(r.s.search) != 1 || r.s.search[0] != "good.example" {
		t.Errorf("search list %q, want [good.example]", r.s.search)
	}
	r, err := NewResolver(&Config{Servers: []string{"192.0.2.1", "[::ffff:192.0.2.2]:5353"}, UDPSize: 100, MinTTL: time.Hour, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	s := r.s
	if !slices.Equal(s.servers, []string{"192.0.2.1:53", "192.0.2.2:5353"}) || s.udpSize != 512 ||
		s.attempts != DefaultAttempts || s.timeout != DefaultTimeout || s.maxTTL != time.Hour || s.cacheSize != DefaultCacheSize {
		t.Errorf("settings %+v", s)
	}
}
