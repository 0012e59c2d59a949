package pgasync_test

import (
	"bytes"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/yieldio/yieldio/fdpoll"
)

// Every type the issue names goes to the server as an argument and comes
// back, in both exec modes (binary formats with the statement cache, text
// with unnamed statements), and literals of each type decode.
func TestTypesRoundTrip(t *testing.T) {
	for _, mode := range []string{"cache_statement", "exec"} {
		t.Run(mode, func(t *testing.T) {
			p, _ := newPool(t, 1, "default_query_exec_mode="+mode)
			ctx := testCtx(t)
			ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
			date := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
			uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
			bin := []byte{0, 1, 2, 0xff, 'x', 0}

			row := await(t, ctx, p.QueryRow(ctx, `SELECT
				$1::int2, $2::int4, $3::int8, $4::float4, $5::float8,
				$6::numeric, $7::text, $8::bytea, $9::bool,
				$10::date, $11::timestamp, $12::timestamptz, $13::uuid,
				$14::json, $15::jsonb, $16::int4[], $17::text[], $18::int4, $19::text`,
				int16(-7), int32(1<<30), int64(-1<<62), float32(1.5), math.Pi,
				"12345678901234567890.0123456789", "héllo\x01wörld", bin, true,
				date, ts, ts, uuid,
				map[string]any{"a": 1.0}, map[string]any{"b": []any{"x", true}}, []int32{1, 2, 3}, []string{"a", "b c", `"q"`}, nil, nil))
			var (
				i2    int16
				i4    int32
				i8    int64
				f4    float32
				f8    float64
				num   pgtype.Numeric
				text  string
				bytea []byte
				b     bool
				d     time.Time
				tsv   time.Time
				tstz  time.Time
				u     [16]byte
				js    map[string]any
				jsb   map[string]any
				arr   []int32
				tarr  []string
				nullI *int32
				nullS pgtype.Text
			)
			if err := row.Scan(&i2, &i4, &i8, &f4, &f8, &num, &text, &bytea, &b, &d, &tsv, &tstz, &u, &js, &jsb, &arr, &tarr, &nullI, &nullS); err != nil {
				t.Fatal(err)
			}
			want := new(big.Float).SetPrec(200)
			want.SetString("12345678901234567890.0123456789")
			numF, err := num.Float64Value()
			if err != nil || !num.Valid || math.Abs(numF.Float64-1.2345678901234567e19) > 1e4 {
				t.Errorf("numeric %+v %v", num, err)
			}
			numText, _ := num.Value()
			if numText != "12345678901234567890.0123456789" {
				t.Errorf("numeric text %v", numText)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"int2", i2, int16(-7)}, {"int4", i4, int32(1 << 30)}, {"int8", i8, int64(-1 << 62)},
				{"float4", f4, float32(1.5)}, {"float8", f8, math.Pi},
				{"text", text, "héllo\x01wörld"}, {"bool", b, true},
				{"date", d, date}, {"timestamp", tsv, ts}, {"uuid", u, uuid},
				{"json", js, map[string]any{"a": 1.0}}, {"jsonb", jsb, map[string]any{"b": []any{"x", true}}},
				{"int4[]", arr, []int32{1, 2, 3}}, {"text[]", tarr, []string{"a", "b c", `"q"`}},
				{"null int", nullI, (*int32)(nil)}, {"null text valid", nullS.Valid, false},
			}
			for _, c := range checks {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
				}
			}
			if !bytes.Equal(bytea, bin) {
				t.Errorf("bytea: got %x, want %x", bytea, bin)
			}
			if !tstz.Equal(ts) {
				t.Errorf("timestamptz: got %v, want %v", tstz, ts)
			}

			// Literals, decoded with Values.
			rows := await(t, ctx, p.Query(ctx, `SELECT 1::int2, 2::int4, 3::int8, 1.25::float8, 'x'::text, '\xdead'::bytea,
				false, '2000-01-02'::date, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"k":"v"}'::jsonb,
				ARRAY[1,NULL,3]::int4[], NULL::text, 10.5::numeric`))
			if !rows.Next() {
				t.Fatal("no row")
			}
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if len(vals) != 13 || vals[0] != int16(1) || vals[1] != int32(2) || vals[2] != int64(3) || vals[3] != 1.25 ||
				vals[4] != "x" || !bytes.Equal(vals[5].([]byte), []byte{0xde, 0xad}) || vals[6] != false || vals[11] != nil {
				t.Errorf("Values: %#v", vals)
			}
			if arr, ok := vals[10].([]any); !ok || len(arr) != 3 || arr[1] != nil {
				t.Errorf("array with NULL: %#v", vals[10])
			}
			if m, ok := vals[9].(map[string]any); !ok || m["k"] != "v" {
				t.Errorf("jsonb: %#v", vals[9])
			}
			// *any destinations.
			var a0, a4 any
			row = await(t, ctx, p.QueryRow(ctx, "SELECT 5::int8, 'z'::text"))
			if err := row.Scan(&a0, &a4); err != nil || a0 != int64(5) || a4 != "z" {
				t.Errorf("*any: %#v %#v %v", a0, a4, err)
			}
		})
	}
}

// Large values cross many reads and writes.
func TestLargeValues(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	row := await(t, ctx, p.QueryRow(ctx, "SELECT $1::bytea, length($1::bytea)", big))
	var got []byte
	var n int
	if err := row.Scan(&got, &n); err != nil {
		t.Fatal(err)
	}
	if n != len(big) || !bytes.Equal(got, big) {
		t.Fatalf("2 MiB bytea: got %d bytes (server saw %d)", len(got), n)
	}
	// Many rows.
	rows, err := fdpoll.Await(ctx, p.Query(ctx, "SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g"))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for rows.Next() {
		var i int
		var s string
		if err := rows.Scan(&i, &s); err != nil {
			t.Fatal(err)
		}
		count++
		if i != count || len(s) != 100 {
			t.Fatalf("row %d: %d %d", count, i, len(s))
		}
	}
	if count != 100000 {
		t.Fatalf("%d rows", count)
	}
}
