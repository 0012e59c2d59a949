package pgasync

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Rows is the whole result of a query, already read from the server. Iterate
// with Next and Scan, as with pgx:
//
//	for rows.Next() {
//		if err := rows.Scan(&id, &name); err != nil { ... }
//	}
//	if err := rows.Err(); err != nil { ... }
//
// Scanning needs no connection, so Rows may be kept and read at leisure;
// Close only releases the memory early. A Rows is not safe for concurrent
// use.
type Rows struct {
	ls     *loopState
	fields []pgconn.FieldDescription
	tag    pgconn.CommandTag
	data   []byte // the DataRow bodies, one after the other
	ends   []int  // where each row ends in data
	idx    int    // rows taken by Next
	vals   [][]byte
	err    error
	closed bool

	// Room for a small one-row result (the usual QueryRow), saving three
	// allocations per query.
	endsBuf [1]int
	valsBuf [3][]byte
	dataBuf [48]byte
}

// addRow keeps a DataRow body; it runs on the loop. The row must have a
// column per field: Scan and Values index the fields by column (no fields
// at all, from NoData or no description, means no columns).
func (r *Rows) addRow(body []byte) error {
	if err := checkDataRow(body, len(r.fields)); err != nil {
		return err
	}
	if r.data == nil && len(r.ends) == 0 {
		if len(body) <= len(r.dataBuf) {
			r.data = r.dataBuf[:0]
			r.ends = r.endsBuf[:0]
		} else {
			r.data = make([]byte, 0, len(body))
		}
	}
	r.data = append(r.data, body...)
	r.ends = append(r.ends, len(r.data))
	return nil
}

func (r *Rows) reset() {
	r.fields, r.data, r.ends, r.idx, r.vals, r.err, r.closed = nil, nil, nil, 0, nil, nil, false
	r.tag = pgconn.CommandTag{}
}

// Next advances to the next row and reports whether there is one.
func (r *Rows) Next() bool {
	if r.closed || r.err != nil || r.idx >= len(r.ends) {
		return false
	}
	start := 0
	if r.idx > 0 {
		start = r.ends[r.idx-1]
	}
	if r.vals == nil {
		r.vals = r.valsBuf[:0]
	}
	r.vals = splitDataRow(r.data[start:r.ends[r.idx]], r.vals[:0])
	r.idx++
	return true
}

var errNoCurrentRow = errors.New("pgasync: Scan called without a successful Next")

// Scan copies the current row's columns into dest, one per column, with
// pgtype's conversions (any pointer pgx can scan into: *int64, *string,
// *time.Time, *[]byte, *pgtype.Numeric, *[]int32, *any, sql.Scanner...). A
// nil dest skips its column. A column that cannot be scanned is a
// *ScanError, also kept as Err.
func (r *Rows) Scan(dest ...any) error {
	if r.idx == 0 || r.closed {
		return errNoCurrentRow
	}
	if len(dest) != len(r.vals) {
		err := fmt.Errorf("pgasync: Scan: %d destinations for %d columns", len(dest), len(r.vals))
		r.err = err
		return err
	}
	m, pooled := r.typeMap()
	defer r.putTypeMap(m, pooled)
	for i, d := range dest {
		if d == nil {
			continue
		}
		f := &r.fields[i]
		if err := m.Scan(f.DataTypeOID, f.Format, r.vals[i], d); err != nil {
			se := &ScanError{Column: i, Name: f.Name, Err: err}
			r.err = se
			return se
		}
	}
	return nil
}

// Values returns the current row's columns decoded into Go values (int32,
// string, time.Time, pgtype.Numeric, []any for arrays, nil for NULL...);
// columns of unknown types come back as string (text) or []byte (binary).
func (r *Rows) Values() ([]any, error) {
	if r.idx == 0 || r.closed {
		return nil, errNoCurrentRow
	}
	m, pooled := r.typeMap()
	defer r.putTypeMap(m, pooled)
	out := make([]any, len(r.vals))
	for i, v := range r.vals {
		if v == nil {
			continue
		}
		f := &r.fields[i]
		t, ok := m.TypeForOID(f.DataTypeOID)
		if !ok {
			if f.Format == textFormat {
				out[i] = string(v)
			} else {
				out[i] = append([]byte(nil), v...)
			}
			continue
		}
		val, err := t.Codec.DecodeValue(m, f.DataTypeOID, f.Format, v)
		if err != nil {
			se := &ScanError{Column: i, Name: f.Name, Err: err}
			r.err = se
			return nil, se
		}
		out[i] = val
	}
	return out, nil
}

// RawValues returns the current row's columns as sent by the server (nil
// for NULL), in the format of FieldDescriptions. They are valid until the
// Rows is closed.
func (r *Rows) RawValues() [][]byte { return r.vals }

// FieldDescriptions describes the result's columns.
func (r *Rows) FieldDescriptions() []pgconn.FieldDescription { return r.fields }

// CommandTag returns the command tag the server completed the query with
// ("SELECT 3", "UPDATE 1", ...).
func (r *Rows) CommandTag() pgconn.CommandTag { return r.tag }

// Len returns the number of rows in the result.
func (r *Rows) Len() int { return len(r.ends) }

// Err returns the first error met by Scan or Values. Query errors fail the
// query's future instead: a Rows always holds a complete result.
func (r *Rows) Err() error { return r.err }

// Close releases the rows; Next then reports false.
func (r *Rows) Close() {
	r.closed = true
	r.data, r.ends, r.vals = nil, nil, nil
}

// typeMap returns the loop's type map when called on the loop, else one
// from the pool's spares (a pgtype.Map is not safe for concurrent use).
func (r *Rows) typeMap() (*pgtype.Map, bool) {
	if r.ls.loop.Current() {
		return r.ls.types, false
	}
	return r.ls.p.maps.Get().(*pgtype.Map), true
}

func (r *Rows) putTypeMap(m *pgtype.Map, pooled bool) {
	if pooled {
		r.ls.p.maps.Put(m)
	}
}

// A Row is the result of QueryRow.
type Row struct {
	rows Rows
	err  error
}

// Scan scans the first row into dest (see Rows.Scan). It returns the
// query's error if it failed, and ErrNoRows if it returned no row.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	r.rows.idx = 0
	if !r.rows.Next() {
		return ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// Err returns the query's error, if it failed.
func (r *Row) Err() error { return r.err }

// CommandTag returns the query's command tag.
func (r *Row) CommandTag() pgconn.CommandTag { return r.rows.tag }

// FieldDescriptions describes the result's columns.
func (r *Row) FieldDescriptions() []pgconn.FieldDescription { return r.rows.fields }
