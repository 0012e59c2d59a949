package pgasync

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Decoders of server messages reject malformed input with an error, never
// a panic.
func TestDecodersRejectMalformedInput(t *testing.T) {
	good, _ := (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("a"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1},
		{Name: []byte("bb"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1, Format: 1},
	}}).Encode(nil)
	fields, err := decodeRowDescription(good[5:])
	if err != nil || len(fields) != 2 || fields[1].Name != "bb" || fields[1].DataTypeOID != 25 || fields[1].Format != 1 {
		t.Fatalf("RowDescription: %+v %v", fields, err)
	}
	for i := range len(good) - 5 {
		if _, err := decodeRowDescription(good[5 : 5+i]); err == nil {
			t.Fatalf("truncated RowDescription (%d bytes) accepted", i)
		}
	}
	if _, err := decodeRowDescription(append(good[5:], 0)); err == nil {
		t.Fatal("RowDescription with trailing bytes accepted")
	}

	row, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("12"), nil, {}}}).Encode(nil)
	body := row[5:]
	if err := checkDataRow(body, 3); err != nil {
		t.Fatal(err)
	}
	vals := splitDataRow(body, nil)
	if len(vals) != 3 || string(vals[0]) != "12" || vals[1] != nil || vals[2] == nil || len(vals[2]) != 0 {
		t.Fatalf("splitDataRow: %q", vals)
	}
	if err := checkDataRow(body, 2); err == nil {
		t.Fatal("DataRow with the wrong column count accepted")
	}
	for i := range len(body) {
		if err := checkDataRow(body[:i], -1); err == nil {
			t.Fatalf("truncated DataRow (%d bytes) accepted", i)
		}
	}
	for _, bad := range [][]byte{
		{0xff, 0xff},                   // negative count
		{0, 1, 0xff, 0xff, 0xff, 0xfe}, // length -2
		{0, 1, 0x7f, 0xff, 0xff, 0xff}, // length past the end
	} {
		if err := checkDataRow(bad, -1); err == nil {
			t.Fatalf("DataRow %x accepted", bad)
		}
	}

	if oids, err := decodeParameterDescription([]byte{0, 2, 0, 0, 0, 23, 0, 0, 0, 25}); err != nil || len(oids) != 2 || oids[1] != 25 {
		t.Fatalf("ParameterDescription: %v %v", oids, err)
	}
	if _, err := decodeParameterDescription([]byte{0, 2, 0, 0, 0, 23}); err == nil {
		t.Fatal("short ParameterDescription accepted")
	}
	if tag, err := commandTag([]byte("INSERT 0 5\x00"), nil); err != nil || tag.RowsAffected() != 5 {
		t.Fatalf("CommandComplete: %v %v", tag, err)
	}
	if _, err := commandTag([]byte("INSERT"), nil); err == nil {
		t.Fatal("CommandComplete without NUL accepted")
	}
	if _, err := pgError([]byte{'S', 'E'}); err == nil {
		t.Fatal("truncated ErrorResponse accepted")
	}
	var pe *ProtocolError
	if _, err := decodeRowDescription(nil); !errors.As(err, &pe) {
		t.Fatalf("not a *ProtocolError: %v", err)
	}
}

func FuzzDecoders(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{0, 2, 'a', 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeRowDescription(b)
		decodeParameterDescription(b)
		if checkDataRow(b, -1) == nil {
			splitDataRow(b, nil)
		}
		var last pgconn.CommandTag
		commandTag(b, &last)
		pgError(b)
	})
}

func TestOpensTransaction(t *testing.T) {
	for sql, want := range map[string]bool{
		"BEGIN": true, "begin;": true, " \n\tBegin Transaction": true, "START TRANSACTION": true,
		"/* a /* nested */ comment */ begin": true, "-- comment\nbegin": true,
		"SELECT 1": false, "beginning": false, "begin_x": false, "COMMIT": false, "": false,
		"/* unterminated": false, "startup": false, "-- only a comment": false,
	} {
		if got := opensTransaction(sql); got != want {
			t.Errorf("opensTransaction(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestStatementCacheLRU(t *testing.T) {
	c := stmtCache{capacity: 2}
	mk := func(sql string) *stmt { return &stmt{sql: sql, ready: true} }
	a, b, d := mk("a"), mk("b"), mk("d")
	c.add(a)
	c.add(b)
	c.get("a") // a is now the most recent
	if ev := c.add(d); len(ev) != 1 || ev[0] != b {
		t.Fatalf("evicted %v, want b", ev)
	}
	if c.get("b") != nil || c.get("a") != a || c.get("d") != d || c.len() != 2 {
		t.Fatal("cache contents wrong after eviction")
	}
	// Statements still being described are never evicted.
	e := &stmt{sql: "e"}
	f := &stmt{sql: "f"}
	c = stmtCache{capacity: 1}
	c.add(e)
	if ev := c.add(f); len(ev) != 0 || c.len() != 2 {
		t.Fatalf("evicted a statement being described: %v", ev)
	}
	c.remove(e)
	c.remove(e) // twice is harmless
	if c.get("e") != nil || c.len() != 1 {
		t.Fatal("remove")
	}
}

// RFC 7677's SCRAM-SHA-256 example, with the client's user name in the
// bare message as the RFC has it (PostgreSQL sends an empty one).
func TestSCRAMRFC7677Vector(t *testing.T) {
	s := &scramClient{
		password:        "pencil",
		nonce:           "rOprNGfwEbeRWgbNEkqO",
		gs2Header:       "n,,",
		clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
	}
	if err := s.readServerFirst([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err != nil {
		t.Fatal(err)
	}
	if err := s.derive(); err != nil {
		t.Fatal(err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if got := string(s.clientFinal()); got != want {
		t.Fatalf("client final\n got %s\nwant %s", got, want)
	}
	if err := s.verifyServerFinal([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatal(err)
	}
	if err := s.verifyServerFinal([]byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))); err == nil {
		t.Fatal("a wrong server signature was accepted")
	}
	if err := s.verifyServerFinal([]byte("e=invalid-proof")); err == nil {
		t.Fatal("a server error was accepted")
	}
}

func TestSCRAMRejectsBadServerFirst(t *testing.T) {
	for _, msg := range []string{
		"",
		"r=other-nonce,s=c2FsdA==,i=4096", // does not extend our nonce
		"r=abc,s=c2FsdA==,i=4096",         // exactly our nonce
		"r=abcdef,s=!!!,i=4096",           // bad salt
		"r=abcdef,s=c2FsdA==,i=0",         // bad count
		"r=abcdef,s=c2FsdA==,i=" + strconv.Itoa(maxSCRAMIterations+1),
		"s=c2FsdA==,r=abcdef,i=4096", // out of order
	} {
		s := &scramClient{nonce: "abc"}
		if err := s.readServerFirst([]byte(msg)); err == nil {
			t.Errorf("server-first %q accepted", msg)
		}
	}
}

func TestSASLPrep(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		"a\u00A0b":      "a b",           // non-ASCII space
		"a\u00ADb":      "ab",            // soft hyphen: mapped to nothing
		"\u2168":        "IX",            // NFKC
		"bad\u0007ctrl": "bad\u0007ctrl", // prohibited: used as is
		"\xff\xfe":      "\xff\xfe",      // not UTF-8: used as is
	} {
		if got := saslPrep(in); got != want {
			t.Errorf("saslPrep(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMD5Password(t *testing.T) {
	// md5(hex(md5("secret" + "alice")) + salt), computed independently.
	if got := md5Password("alice", "secret", []byte{1, 2, 3, 4}); got != "md598a0412b9c31436fc53776e863350083" {
		t.Fatalf("got %q", got)
	}
}

func TestWireEncoders(t *testing.T) {
	// Our framing agrees with pgproto3's decoders.
	var p pgproto3.Parse
	b := appendParse(nil, "s1", "SELECT $1")
	if err := p.Decode(b[5:]); err != nil || p.Name != "s1" || p.Query != "SELECT $1" {
		t.Fatalf("Parse: %+v %v", p, err)
	}
	var q pgproto3.Query
	b = appendQuery(nil, "SELECT 1")
	if err := q.Decode(b[5:]); err != nil || q.String != "SELECT 1" || int(b[4]) != len(b)-1 {
		t.Fatalf("Query: %+v %v", q, err)
	}
	var d pgproto3.Describe
	b = appendDescribeStatement(nil, "s1")
	if err := d.Decode(b[5:]); err != nil || d.ObjectType != 'S' || d.Name != "s1" {
		t.Fatalf("Describe: %+v %v", d, err)
	}
	var e pgproto3.Execute
	if err := e.Decode(msgExecuteAll[5:]); err != nil || e.Portal != "" || e.MaxRows != 0 {
		t.Fatalf("Execute: %+v %v", e, err)
	}
	if !bytes.Equal(msgSync, mustEncode(t, &pgproto3.Sync{})) || !bytes.Equal(msgTerminate, mustEncode(t, &pgproto3.Terminate{})) ||
		!bytes.Equal(msgCopyDone, mustEncode(t, &pgproto3.CopyDone{})) {
		t.Fatal("fixed messages differ from pgproto3's")
	}
}

func mustEncode(t *testing.T, m pgproto3.FrontendMessage) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A connection's repeated command tag is the last one again, without an
// allocation; a different one replaces it.
func TestCommandTagReused(t *testing.T) {
	var last pgconn.CommandTag
	body := []byte("SELECT 1\x00")
	if tag, err := commandTag(body, &last); err != nil || tag.String() != "SELECT 1" || last.String() != "SELECT 1" {
		t.Fatalf("first: %v %v (last %v)", tag, err, last)
	}
	if n := testing.AllocsPerRun(100, func() {
		if tag, _ := commandTag(body, &last); tag.String() != "SELECT 1" {
			t.Fatalf("repeated: %v", tag)
		}
	}); n != 0 {
		t.Errorf("%v allocations for a repeated tag", n)
	}
	if tag, err := commandTag([]byte("UPDATE 3\x00"), &last); err != nil || tag.RowsAffected() != 3 || last.String() != "UPDATE 3" {
		t.Fatalf("different: %v %v (last %v)", tag, err, last)
	}
}
