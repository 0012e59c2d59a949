package pgasync

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: the user name is
// the start-up message's, so the client sends an empty one, and channel
// binding, when used, is tls-server-end-point (RFC 5929).

const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
	// maxSCRAMIterations bounds the work a server can make the client do.
	maxSCRAMIterations = 1 << 24
)

// A scramClient is the client side of one SCRAM exchange.
type scramClient struct {
	password        string
	nonce           string
	gs2Header       string // "n,,", "y,," or "p=tls-server-end-point,,"
	cbindData       []byte // the server certificate's hash, for -PLUS
	clientFirstBare string

	// From the server-first message.
	serverNonce string
	salt        []byte
	iterations  int
	serverFirst string

	authMessage    string
	saltedPassword []byte
	verified       bool // the server's signature checked out
}

var errSCRAMServer = errors.New("pgasync: SCRAM: invalid server message")

// newSCRAM starts an exchange. cbind is the channel binding data for
// -PLUS, nil otherwise; yFlag without cbind sends the "y" flag (the client
// could bind, the server did not offer it), which guards against a
// downgrade by a man in the middle who stripped the -PLUS offer.
func newSCRAM(password string, cbind []byte, yFlag bool) (*scramClient, error) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("pgasync: SCRAM nonce: %w", err)
	}
	s := &scramClient{password: saslPrep(password), nonce: base64.RawStdEncoding.EncodeToString(raw)}
	switch {
	case cbind != nil:
		s.gs2Header, s.cbindData = "p=tls-server-end-point,,", cbind
	case yFlag:
		s.gs2Header = "y,,"
	default:
		s.gs2Header = "n,,"
	}
	s.clientFirstBare = "n=,r=" + s.nonce
	return s, nil
}

// clientFirst is the client-first message.
func (s *scramClient) clientFirst() []byte { return []byte(s.gs2Header + s.clientFirstBare) }

// readServerFirst parses the server-first message.
func (s *scramClient) readServerFirst(msg []byte) error {
	s.serverFirst = string(msg)
	parts := strings.Split(s.serverFirst, ",")
	if len(parts) < 3 || !strings.HasPrefix(parts[0], "r=") || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		return fmt.Errorf("%w: %q", errSCRAMServer, msg)
	}
	s.serverNonce = parts[0][2:]
	if !strings.HasPrefix(s.serverNonce, s.nonce) || len(s.serverNonce) == len(s.nonce) {
		return fmt.Errorf("%w: server nonce does not extend the client's", errSCRAMServer)
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1][2:])
	if err != nil || len(salt) == 0 {
		return fmt.Errorf("%w: bad salt", errSCRAMServer)
	}
	s.salt = salt
	i, err := strconv.Atoi(parts[2][2:])
	if err != nil || i < 1 || i > maxSCRAMIterations {
		return fmt.Errorf("%w: bad iteration count %q", errSCRAMServer, parts[2][2:])
	}
	s.iterations = i
	return nil
}

// derive computes the salted password: the expensive step (thousands of
// HMAC rounds), run off the loop.
func (s *scramClient) derive() error {
	key, err := pbkdf2.Key(sha256.New, s.password, s.salt, s.iterations, sha256.Size)
	if err != nil {
		return fmt.Errorf("pgasync: SCRAM: %w", err)
	}
	s.saltedPassword = key
	return nil
}

// clientFinal is the client-final message, with the proof.
func (s *scramClient) clientFinal() []byte {
	cbind := base64.StdEncoding.EncodeToString(append([]byte(s.gs2Header), s.cbindData...))
	withoutProof := "c=" + cbind + ",r=" + s.serverNonce
	s.authMessage = s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientKey := hmacSHA256(s.saltedPassword, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	sig := hmacSHA256(storedKey[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
}

// verifyServerFinal checks the server's signature, which proves the server
// knew the password's verifier.
func (s *scramClient) verifyServerFinal(msg []byte) error {
	if e, ok := bytes.CutPrefix(msg, []byte("e=")); ok {
		return fmt.Errorf("pgasync: SCRAM: server error %q", e)
	}
	v, ok := bytes.CutPrefix(msg, []byte("v="))
	if !ok {
		return fmt.Errorf("%w: %q", errSCRAMServer, msg)
	}
	if i := bytes.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	got, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil {
		return fmt.Errorf("%w: bad server signature encoding", errSCRAMServer)
	}
	serverKey := hmacSHA256(s.saltedPassword, "Server Key")
	if !hmac.Equal(got, hmacSHA256(serverKey, s.authMessage)) {
		return errors.New("pgasync: SCRAM: wrong server signature: the server does not know the password")
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// tlsServerEndPoint returns the channel binding data of RFC 5929: the hash
// of the server's certificate, with the certificate's signature hash (SHA-256
// for MD5 and SHA-1).
func tlsServerEndPoint(cs tls.ConnectionState) ([]byte, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("no server certificate")
	}
	cert := cs.PeerCertificates[0]
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, fmt.Errorf("no channel binding hash for a certificate signed with %v", cert.SignatureAlgorithm)
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}

// saslPrep prepares a password as SCRAM's SASLprep profile (RFC 4013) asks,
// the way PostgreSQL does: non-ASCII spaces become spaces, characters
// "commonly mapped to nothing" go, the result is NFKC-normalised; a password
// that is not valid UTF-8 or has prohibited characters is used as it is
// (the server does the same). The bidirectional-text rules are not checked.
func saslPrep(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case mappedToNothing(r):
		case r != ' ' && unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := norm.NFKC.String(b.String())
	for _, r := range out {
		if prohibited(r) {
			return s
		}
	}
	return out
}

// mappedToNothing is RFC 3454 table B.1.
func mappedToNothing(r rune) bool {
	switch {
	case r == 0x00AD, r == 0x034F, r == 0x1806, r >= 0x180B && r <= 0x180D,
		r >= 0x200B && r <= 0x200D, r == 0x2060, r >= 0xFE00 && r <= 0xFE0F, r == 0xFEFF:
		return true
	}
	return false
}

// prohibited approximates RFC 4013's prohibited output: control characters,
// private use, non-characters, surrogates and the special code points.
func prohibited(r rune) bool {
	switch {
	case unicode.IsControl(r),
		r >= 0xE000 && r <= 0xF8FF, r >= 0xF0000 && r <= 0xFFFFD, r >= 0x100000 && r <= 0x10FFFD,
		r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE,
		r >= 0xD800 && r <= 0xDFFF,
		r >= 0xFFF9 && r <= 0xFFFD, r >= 0x2FF0 && r <= 0x2FFB,
		r == 0x0340, r == 0x0341, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x206A && r <= 0x206F,
		r == 0xE0001, r >= 0xE0020 && r <= 0xE007F:
		return true
	}
	return false
}
