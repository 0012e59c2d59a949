package dnsasync

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzCheckDatagram feeds arbitrary datagrams to the reply check: it must
// never panic, and must accept only a response to the query.
func FuzzCheckDatagram(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("host.example.test.", dns.TypeA)
	q.Id = 0x1234
	good := new(dns.Msg)
	good.SetReply(q)
	rr, _ := dns.NewRR("host.example.test. 300 IN A 192.0.2.1")
	good.Answer = []dns.RR{rr}
	b, _ := good.Pack()
	f.Add(b)
	f.Add(b[:12])
	f.Add(b[:len(b)-1])
	f.Add([]byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0xff})
	f.Add([]byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // pointer loop
	f.Fuzz(func(t *testing.T, data []byte) {
		reply, _ := checkDatagram(q, data, DefaultUDPSize)
		if reply != nil && (reply.Id != q.Id || !reply.Response || !answersQuestion(q, reply)) {
			t.Fatalf("accepted %v", reply)
		}
	})
}

func TestCheckDatagram(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("host.example.test.", dns.TypeA)
	reply := new(dns.Msg)
	reply.SetReply(q)
	reply.Question[0].Name = "HOST.Example.TEST."
	b, _ := reply.Pack()
	if m, why := checkDatagram(q, b, 512); m == nil {
		t.Fatalf("a reply with the question in other case was dropped (%d)", why)
	}
	if _, why := checkDatagram(q, b, len(b)-1); why != dropOversized {
		t.Errorf("oversized: reason %d", why)
	}
}
