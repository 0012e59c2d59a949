package fdpoll

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// crypto/tls runs unmodified over a Conn inside a task: the handshake and
// the record layer suspend the task in Conn.Read like any other code.
func TestTLSClientInTask(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, "hello over tls: "+string(body))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	cfg := &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}

	g := newGroup(t, 1)
	l := g.Loop(0)
	ticks := 0
	stop := NewFuture[struct{}]()
	// Another task keeps running while the TLS task waits for the network.
	ticker := l.Spawn(context.Background(), func(ctx context.Context) error {
		for !stop.Done() {
			ticks++
			if err := Sleep(ctx, 0); err != nil {
				return err
			}
			if _, err := WaitAny(ctx, stop, l.Spawn(ctx, func(ctx context.Context) error { return nil })); err != nil {
				return err
			}
		}
		return nil
	})
	inTask(t, l, func(ctx context.Context) error {
		c, err := Await(ctx, Dial(ctx, "tcp", addr))
		if err != nil {
			return err
		}
		tc := tls.Client(c, cfg)
		defer tc.Close()
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("negotiated %x", v)
		}
		for i := range 3 {
			req, _ := http.NewRequest("POST", "https://example.com/", strings.NewReader(strings.Repeat("x", i*10000)))
			if err := req.Write(tc); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(tc), req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if want := "hello over tls: " + strings.Repeat("x", i*10000); string(body) != want {
				t.Errorf("request %d: body of %d bytes", i, len(body))
			}
		}
		return nil
	})
	stop.Complete(struct{}{}, nil)
	if _, err := Await(context.Background(), ticker); err != nil {
		t.Fatal(err)
	}
	inTask(t, l, func(context.Context) error {
		if ticks < 2 {
			t.Errorf("the other task ran %d times during the TLS exchange", ticks)
		}
		return nil
	})
}
