package pgasync

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/yieldio/yieldio/fdpoll"
)

// ErrTLSRefused is the error of a connection attempt that asked for TLS
// (sslmode require, verify-ca, verify-full, or prefer before falling back)
// from a server that does not offer it.
var ErrTLSRefused = errors.New("pgasync: server refused TLS")

// connect opens a connection for the loop: each host of the configuration
// in turn (with its fallbacks, e.g. plain after TLS for sslmode=prefer)
// until one succeeds. It runs in a task on the loop.
func (ls *loopState) connect(ctx context.Context, role connRole) (*conn, error) {
	cfg := ls.p.cfg.Conn
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	targets := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	var errs []error
	var addrs []string
	for _, t := range targets {
		_, addr := pgconn.NetworkAddress(t.Host, t.Port)
		if !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
		c, err := ls.connectOne(ctx, t, role)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &ConnError{Op: "connect", Addr: strings.Join(addrs, ","), Err: errors.Join(errs...)}
}

// connectOne dials one host (each of its addresses, for a name), sets up
// TLS, and runs the start-up exchange.
func (ls *loopState) connectOne(ctx context.Context, t *pgconn.FallbackConfig, role connRole) (*conn, error) {
	network, addr := pgconn.NetworkAddress(t.Host, t.Port)
	addrs := []string{addr}
	if network == "tcp" {
		var err error
		if addrs, err = resolve(ctx, t.Host, t.Port); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, a := range addrs {
		var nc *fdpoll.Conn
		sock := -1
		var err error
		if network == "tcp" && role == roleShared && lowWaterWorks() {
			// Pipelined: the reader batches replies with the socket's
			// low-water mark (see conn.setLowWater).
			nc, sock, err = dialLowWater(ctx, ls.loop, a)
		} else {
			nc, err = fdpoll.Await(ctx, ls.loop.Dial(ctx, network, a))
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := newConn(ls, nc, sock, network, a, role)
		if err := c.startup(ctx, t); err != nil {
			c.dropLowWater()
			nc.Close()
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		if c.rw != c.nc {
			// TLS: the reader's reads go through crypto/tls, which reads
			// records whole; the mark is left to plain connections.
			c.dropLowWater()
		}
		ls.conns[c] = struct{}{}
		ls.loop.Spawn(context.Background(), c.readLoop)
		return c, nil
	}
	return nil, errors.Join(errs...)
}

// resolve returns "ip:port" for each address of host; a name is looked up
// with the system resolver on fdpoll's worker pool (the loop never blocks).
func resolve(ctx context.Context, host string, port uint16) ([]string, error) {
	ps := strconv.Itoa(int(port))
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{net.JoinHostPort(ip.String(), ps)}, nil
	}
	ips, err := fdpoll.Await(ctx, fdpoll.Go(ctx, func(ctx context.Context) ([]string, error) {
		return net.DefaultResolver.LookupHost(ctx, host)
	}))
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, ps)
	}
	return out, nil
}

// startup negotiates TLS, sends the start-up message and authenticates,
// reading until the server is ready for queries. It runs in a task; reads
// and writes suspend it, and ctx's end interrupts them.
func (c *conn) startup(ctx context.Context, t *pgconn.FallbackConfig) error {
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	err := c.handshake(ctx, t)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return err
	}
	c.nc.SetDeadline(time.Time{})
	return nil
}

func (c *conn) handshake(ctx context.Context, t *pgconn.FallbackConfig) error {
	cfg := c.ls.p.cfg.Conn
	if t.TLSConfig != nil {
		if err := c.startTLS(ctx, t.TLSConfig, cfg.SSLNegotiation == "direct"); err != nil {
			return err
		}
	}
	params := map[string]string{"user": cfg.User, "client_encoding": "UTF8"}
	if cfg.Database != "" {
		params["database"] = cfg.Database
	}
	for k, v := range cfg.RuntimeParams {
		params[k] = v
	}
	msg, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	if err != nil {
		return fmt.Errorf("start-up message: %w", err)
	}
	if _, err := c.rw.Write(msg); err != nil {
		return err
	}
	var sc *scramClient
	for {
		typ, body, err := c.readMsg()
		if err != nil {
			return err
		}
		switch typ {
		case 'R':
			if sc, err = c.authenticate(ctx, body, sc); err != nil {
				return err
			}
		case 'E':
			pe, err := pgError(body)
			if err != nil {
				return err
			}
			return pe
		case 'S':
			r := msgReader{b: body}
			k, v := r.cstring(), r.cstring()
			if r.bad {
				return protocolErrorf("malformed ParameterStatus")
			}
			c.params[string(k)] = string(v)
		case 'K':
			var kd pgproto3.BackendKeyData
			if err := kd.Decode(body); err != nil {
				return protocolErrorf("malformed BackendKeyData: %v", err)
			}
			c.pid, c.secret = kd.ProcessID, kd.SecretKey
		case 'N', 'v': // notices; NegotiateProtocolVersion (we asked for nothing optional)
		case 'Z':
			if len(body) != 1 {
				return protocolErrorf("malformed ReadyForQuery")
			}
			c.txStatus = body[0]
			return nil
		default:
			return protocolErrorf("unexpected message %s during start-up", msgName(typ))
		}
	}
}

// startTLS asks the server for TLS (SSLRequest) and runs the handshake;
// with direct it starts TLS at once (PostgreSQL 17's sslnegotiation=direct).
func (c *conn) startTLS(ctx context.Context, tc *tls.Config, direct bool) error {
	if direct {
		tc = tc.Clone()
		tc.NextProtos = []string{"postgresql"}
	} else {
		req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)
		if _, err := c.nc.Write(req); err != nil {
			return err
		}
		var b [1]byte
		for {
			n, err := c.nc.Read(b[:])
			if err != nil {
				return fmt.Errorf("reading the answer to SSLRequest: %w", err)
			}
			if n == 1 {
				break
			}
		}
		switch b[0] {
		case 'S':
		case 'N':
			return ErrTLSRefused
		default:
			return protocolErrorf("answer %s to SSLRequest", msgName(b[0]))
		}
	}
	tlsConn := tls.Client(c.nc, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.rw = tlsConn
	return nil
}

// authenticate answers one Authentication message.
func (c *conn) authenticate(ctx context.Context, body []byte, sc *scramClient) (*scramClient, error) {
	cfg := c.ls.p.cfg.Conn
	if len(body) < 4 {
		return sc, protocolErrorf("malformed Authentication message")
	}
	send := func(m pgproto3.FrontendMessage) error {
		b, err := m.Encode(nil)
		if err != nil {
			return err
		}
		_, err = c.rw.Write(b)
		return err
	}
	switch kind := binary.BigEndian.Uint32(body); kind {
	case 0: // AuthenticationOk
		if sc != nil && !sc.verified {
			// Without AuthenticationSASLFinal the server has not proved
			// that it knows the password (mutual authentication).
			return sc, errors.New("pgasync: SCRAM: server ended the exchange without proving it knows the password")
		}
		if cfg.ChannelBinding == "require" && (sc == nil || sc.cbindData == nil) {
			return sc, errors.New("pgasync: channel_binding=require, but the server authenticated the client without channel binding")
		}
		return sc, nil
	case 3, 5: // cleartext password, MD5
		if cfg.ChannelBinding == "require" {
			// The password is not given to a server that has not
			// proved who it is.
			return sc, errors.New("pgasync: channel_binding=require, but the server asked for a password without channel binding")
		}
		if kind == 3 {
			return sc, send(&pgproto3.PasswordMessage{Password: cfg.Password})
		}
		if len(body) != 8 {
			return sc, protocolErrorf("malformed AuthenticationMD5Password")
		}
		return sc, send(&pgproto3.PasswordMessage{Password: md5Password(cfg.User, cfg.Password, body[4:8])})
	case 10: // SASL: the mechanisms offered
		var mechs []string
		r := msgReader{b: body[4:]}
		for {
			m := r.cstring()
			if r.bad {
				return sc, protocolErrorf("malformed AuthenticationSASL")
			}
			if len(m) == 0 {
				break
			}
			mechs = append(mechs, string(m))
		}
		return c.startSCRAM(mechs)
	case 11: // SASL continue: server-first
		if sc == nil {
			return sc, protocolErrorf("AuthenticationSASLContinue without SASL")
		}
		if err := sc.readServerFirst(body[4:]); err != nil {
			return sc, err
		}
		if _, err := fdpoll.Await(ctx, fdpoll.Go(ctx, func(context.Context) (struct{}, error) {
			return struct{}{}, sc.derive()
		})); err != nil {
			return sc, err
		}
		return sc, send(&pgproto3.SASLResponse{Data: sc.clientFinal()})
	case 12: // SASL final: server signature
		if sc == nil || sc.authMessage == "" {
			return sc, protocolErrorf("AuthenticationSASLFinal out of order")
		}
		if err := sc.verifyServerFinal(body[4:]); err != nil {
			return sc, err
		}
		sc.verified = true
		return sc, nil
	default:
		return sc, fmt.Errorf("pgasync: unsupported authentication method %d (GSSAPI and SSPI are not implemented)", kind)
	}
}

// startSCRAM picks SCRAM-SHA-256-PLUS when TLS is on and channel binding
// is not disabled, else SCRAM-SHA-256, and sends the client-first message.
func (c *conn) startSCRAM(mechs []string) (*scramClient, error) {
	cfg := c.ls.p.cfg.Conn
	tc, tlsUsed := c.rw.(*tls.Conn)
	var cbind []byte
	if tlsUsed && cfg.ChannelBinding != "disable" && slices.Contains(mechs, mechSCRAMPlus) {
		var err error
		if cbind, err = tlsServerEndPoint(tc.ConnectionState()); err != nil && cfg.ChannelBinding == "require" {
			return nil, fmt.Errorf("pgasync: channel binding: %w", err)
		}
	}
	if cbind == nil && cfg.ChannelBinding == "require" {
		return nil, errors.New("pgasync: channel_binding=require but the server offers no SCRAM-SHA-256-PLUS over TLS")
	}
	mech := mechSCRAMPlus
	if cbind == nil {
		if !slices.Contains(mechs, mechSCRAM) {
			return nil, fmt.Errorf("pgasync: no supported SASL mechanism among %q", mechs)
		}
		mech = mechSCRAM
	}
	// "y": we could bind but the server offers no -PLUS (a man in the
	// middle may have stripped it); "n" when we choose not to.
	yFlag := tlsUsed && cfg.ChannelBinding != "disable" && !slices.Contains(mechs, mechSCRAMPlus)
	sc, err := newSCRAM(cfg.Password, cbind, yFlag)
	if err != nil {
		return nil, err
	}
	b, err := (&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: sc.clientFirst()}).Encode(nil)
	if err != nil {
		return nil, err
	}
	_, err = c.rw.Write(b)
	return sc, err
}

// md5Password is "md5" + md5(md5(password + user) + salt), in hex.
func md5Password(user, password string, salt []byte) string {
	inner := md5.Sum([]byte(password + user))
	h := md5.New()
	h.Write([]byte(hex.EncodeToString(inner[:])))
	h.Write(salt)
	return "md5" + hex.EncodeToString(h.Sum(nil))
}
