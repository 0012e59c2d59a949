package pgasync

import (
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// Wire formats of parameters and result columns.
const (
	textFormat   = pgtype.TextFormatCode
	binaryFormat = pgtype.BinaryFormatCode
)

// paramFormat picks the format to send arg in for a parameter of type oid:
// the type's preferred format, except that strings go as text, which the
// server parses for any type ('42' for an int4 parameter, say).
func paramFormat(m *pgtype.Map, oid uint32, arg any) int16 {
	switch arg.(type) {
	case string, *string:
		return textFormat
	}
	return m.FormatCodeForOID(oid)
}

// encodeUntyped appends arg in text format for a parameter whose type the
// server infers (ExecModeUnnamed): pgtype picks the type from arg's Go type.
// Types pgtype does not map by themselves are tried as the usual suspects:
// [16]byte as a uuid, maps and structs as json (the server converts the
// text to the parameter's type).
func encodeUntyped(m *pgtype.Map, arg any, b []byte) ([]byte, error) {
	v, err := m.Encode(0, textFormat, arg, b)
	if err == nil {
		return v, nil
	}
	var oid uint32
	t := reflect.TypeOf(arg)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == nil:
		return nil, err
	case t.Kind() == reflect.Array && t.Len() == 16 && t.Elem().Kind() == reflect.Uint8:
		oid = pgtype.UUIDOID
	case t.Kind() == reflect.Map, t.Kind() == reflect.Struct, t.Kind() == reflect.Slice:
		oid = pgtype.JSONOID
	default:
		return nil, err
	}
	if v, err2 := m.Encode(oid, textFormat, arg, b); err2 == nil {
		return v, nil
	}
	return nil, err
}
