package pgasync

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// The messages sent on every query (Bind, Execute, Sync and friends) are
// framed here directly into the connection's scratch buffer, with parameters
// encoded in place by pgtype: no intermediate [][]byte. Rarer messages
// (start-up, authentication, cancellation) use pgproto3's types.

// beginMsg appends a message type and a length placeholder; finishMsg fills
// the length in.
func beginMsg(b []byte, typ byte) ([]byte, int) {
	b = append(b, typ, 0, 0, 0, 0)
	return b, len(b) - 4
}

func finishMsg(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at))
	return b
}

func appendCString(b []byte, s string) []byte { return append(append(b, s...), 0) }

func appendInt16(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }

func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }

// Fixed messages.
var (
	msgSync          = []byte{'S', 0, 0, 0, 4}
	msgExecuteAll    = []byte{'E', 0, 0, 0, 9, 0, 0, 0, 0, 0} // unnamed portal, no row limit
	msgDescribePortl = []byte{'D', 0, 0, 0, 6, 'P', 0}        // the unnamed portal
	msgTerminate     = []byte{'X', 0, 0, 0, 4}
	msgCopyDone      = []byte{'c', 0, 0, 0, 4}
)

func appendParse(b []byte, name, sql string) []byte {
	b, at := beginMsg(b, 'P')
	b = appendCString(b, name)
	b = appendCString(b, sql)
	b = appendInt16(b, 0) // let the server infer every parameter type
	return finishMsg(b, at)
}

func appendDescribeStatement(b []byte, name string) []byte {
	b, at := beginMsg(b, 'D')
	b = append(b, 'S')
	b = appendCString(b, name)
	return finishMsg(b, at)
}

func appendCloseStatement(b []byte, name string) []byte {
	b, at := beginMsg(b, 'C')
	b = append(b, 'S')
	b = appendCString(b, name)
	return finishMsg(b, at)
}

func appendQuery(b []byte, sql string) []byte {
	b, at := beginMsg(b, 'Q')
	b = appendCString(b, sql)
	return finishMsg(b, at)
}

func appendCopyFail(b []byte, reason string) []byte {
	b, at := beginMsg(b, 'f')
	b = appendCString(b, reason)
	return finishMsg(b, at)
}

// A msgReader decodes a message body; any read past its end sets bad and
// returns zero values, so a malformed message from the server is an error,
// never a panic.
type msgReader struct {
	b   []byte
	bad bool
}

func (r *msgReader) byte1() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *msgReader) int16() int16 {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *msgReader) int32() int32 {
	if len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

// cstring returns the bytes up to the next NUL (aliasing the body).
func (r *msgReader) cstring() []byte {
	for i, c := range r.b {
		if c == 0 {
			s := r.b[:i]
			r.b = r.b[i+1:]
			return s
		}
	}
	r.bad = true
	r.b = nil
	return nil
}

// decodeRowDescription decodes a RowDescription ('T') body into fresh
// FieldDescriptions (names copied out of the read buffer).
func decodeRowDescription(body []byte) ([]pgconn.FieldDescription, error) {
	r := msgReader{b: body}
	n := int(r.int16())
	if r.bad || n < 0 || n > len(body) {
		return nil, protocolErrorf("malformed RowDescription")
	}
	fields := make([]pgconn.FieldDescription, n)
	for i := range fields {
		f := &fields[i]
		f.Name = string(r.cstring())
		f.TableOID = uint32(r.int32())
		f.TableAttributeNumber = uint16(r.int16())
		f.DataTypeOID = uint32(r.int32())
		f.DataTypeSize = r.int16()
		f.TypeModifier = r.int32()
		f.Format = r.int16()
	}
	if r.bad || len(r.b) != 0 {
		return nil, protocolErrorf("malformed RowDescription")
	}
	return fields, nil
}

// decodeParameterDescription decodes a ParameterDescription ('t') body.
// Its count, like Bind's, is a 16-bit number the server treats as unsigned:
// a statement may have up to 65535 parameters.
func decodeParameterDescription(body []byte) ([]uint32, error) {
	r := msgReader{b: body}
	n := int(uint16(r.int16()))
	if r.bad || 4*n != len(r.b) {
		return nil, protocolErrorf("malformed ParameterDescription")
	}
	oids := make([]uint32, n)
	for i := range oids {
		oids[i] = uint32(r.int32())
	}
	return oids, nil
}

// checkDataRow validates a DataRow ('D') body: its column count (want < 0:
// any) and that the column lengths add up to the body exactly.
func checkDataRow(body []byte, want int) error {
	r := msgReader{b: body}
	n := int(r.int16())
	if r.bad || n < 0 || (want >= 0 && n != want) {
		return protocolErrorf("DataRow has %d columns, want %d", n, want)
	}
	for range n {
		l := r.int32()
		if r.bad || l < -1 || int(l) > len(r.b) {
			return protocolErrorf("malformed DataRow")
		}
		if l > 0 {
			r.b = r.b[l:]
		}
	}
	if r.bad || len(r.b) != 0 {
		return protocolErrorf("malformed DataRow")
	}
	return nil
}

// splitDataRow appends the column values of a DataRow body already checked
// by checkDataRow to vals; a NULL is a nil slice.
func splitDataRow(body []byte, vals [][]byte) [][]byte {
	n := int(binary.BigEndian.Uint16(body))
	p := 2
	for range n {
		l := int(int32(binary.BigEndian.Uint32(body[p:])))
		p += 4
		if l < 0 {
			vals = append(vals, nil)
			continue
		}
		vals = append(vals, body[p:p+l:p+l])
		p += l
	}
	return vals
}

// commandTag decodes a CommandComplete ('C') body. last, if not nil, is
// the tag decoded before on the connection: a tag equal to it (a statement
// run again, "SELECT 1" after "SELECT 1") is returned without allocating,
// and a new one replaces it.
func commandTag(body []byte, last *pgconn.CommandTag) (pgconn.CommandTag, error) {
	if len(body) == 0 || body[len(body)-1] != 0 {
		return pgconn.CommandTag{}, protocolErrorf("malformed CommandComplete")
	}
	b := body[:len(body)-1]
	if last == nil {
		return pgconn.NewCommandTag(string(b)), nil
	}
	if string(b) != last.String() {
		*last = pgconn.NewCommandTag(string(b))
	}
	return *last, nil
}

// msgName names a backend message type for error messages.
func msgName(typ byte) string {
	if typ >= 0x20 && typ < 0x7f {
		return fmt.Sprintf("%q", typ)
	}
	return fmt.Sprintf("0x%02x", typ)
}
