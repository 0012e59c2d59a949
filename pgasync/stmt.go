package pgasync

import (
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A stmt is a statement prepared on one connection (ExecModeCache): its
// server-side name, parameter types and result columns. Once ready it is
// immutable, so the Rows of every query share its fields.
type stmt struct {
	name          string
	sql           string
	ready         bool  // described; false while its Parse/Describe is pending
	err           error // the Parse failed: requests waiting for it fail too
	paramOIDs     []uint32
	fields        []pgconn.FieldDescription // Format is the result format asked for
	resultFormats []int16

	prev, next *stmt // LRU list, most recent first
}

// setFields records the result columns and picks each one's result format:
// binary where pgtype has a binary codec for the type, text otherwise.
func (s *stmt) setFields(fields []pgconn.FieldDescription, m *pgtype.Map) {
	s.fields = fields
	s.resultFormats = s.resultFormats[:0]
	same := true
	for i := range fields {
		f := &fields[i]
		f.Format = m.FormatCodeForOID(f.DataTypeOID)
		s.resultFormats = append(s.resultFormats, f.Format)
		same = same && f.Format == fields[0].Format
	}
	if same && len(fields) > 1 {
		// One format code applies to every column.
		s.resultFormats = s.resultFormats[:1]
	}
}

// A stmtCache is a connection's prepared statements by SQL text, bounded,
// least recently used first out.
type stmtCache struct {
	m          map[string]*stmt
	head, tail *stmt
	capacity   int
}

func (c *stmtCache) get(sql string) *stmt {
	s := c.m[sql]
	if s != nil && s != c.head {
		c.unlink(s)
		c.pushFront(s)
	}
	return s
}

// add inserts s and returns the statements evicted to make room (only ready
// ones: a statement being described has requests waiting for it).
func (c *stmtCache) add(s *stmt) (evicted []*stmt) {
	if c.m == nil {
		c.m = make(map[string]*stmt)
	}
	c.m[s.sql] = s
	c.pushFront(s)
	for v := c.tail; len(c.m) > c.capacity && v != nil; {
		prev := v.prev
		if v.ready {
			c.remove(v)
			evicted = append(evicted, v)
		}
		v = prev
	}
	return evicted
}

// remove drops s if it is still the cached statement for its SQL.
func (c *stmtCache) remove(s *stmt) {
	if c.m[s.sql] != s {
		return
	}
	delete(c.m, s.sql)
	c.unlink(s)
}

func (c *stmtCache) len() int { return len(c.m) }

func (c *stmtCache) pushFront(s *stmt) {
	s.prev, s.next = nil, c.head
	if c.head != nil {
		c.head.prev = s
	}
	c.head = s
	if c.tail == nil {
		c.tail = s
	}
}

func (c *stmtCache) unlink(s *stmt) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		c.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		c.tail = s.prev
	}
	s.prev, s.next = nil, nil
}
