package parquet

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/xitongsys/parquet-go/marshal"
	"github.com/xitongsys/parquet-go/schema"

	"github.com/cmsetl/cms-etl/transform"
)

// randomRow fills every field of a row of type R, leaving about a third of
// the nullable ones NULL.
func randomRow[R any](rng *rand.Rand) R {
	var r R
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		target := f
		if f.Kind() == reflect.Pointer {
			if rng.IntN(3) == 0 {
				continue
			}
			f.Set(reflect.New(f.Type().Elem()))
			target = f.Elem()
		}
		switch target.Interface().(type) {
		case int32:
			target.SetInt(int64(rng.Int32()) - 1<<30)
		case int64:
			target.SetInt(rng.Int64() - 1<<62)
		case string:
			target.SetString("v" + strconv.Itoa(rng.IntN(4))) // repeats exercise the boxed-value reuse
		case bool:
			target.SetBool(rng.IntN(2) == 0)
		case time.Time:
			target.Set(reflect.ValueOf(time.UnixMicro(rng.Int64N(1 << 50)).UTC()))
		case []byte, nil:
		default:
			if f.Type().Name() != "RawMessage" {
				panic("unexpected field type " + target.Type().String())
			}
		}
	}
	return r
}

// testTable holds marshalRecords equal to the library's Marshal for t's
// records, field by field and level by level.
func testTable[R any](t *testing.T, tb *Table[R]) {
	t.Helper()
	sh, err := schema.NewSchemaHandlerFromStruct(tb.newRecord())
	if err != nil {
		t.Fatal(err)
	}
	if n := reflect.TypeOf(tb.newRecord()).Elem().NumField(); n != tb.columns {
		t.Fatalf("record has %d fields, columns is %d", n, tb.columns)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 500} {
		refs, objs := make([]any, n), make([]any, n)
		for i := range n {
			row := randomRow[R](rng)
			refs[i] = tb.hold(&row)
			objs[i] = tb.record(refs[i])
		}
		want, err := marshal.Marshal(objs, sh)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalRecords(tb, refs, sh)
		if err != nil {
			t.Fatal(err)
		}
		if len(*got) != len(*want) {
			t.Fatalf("%d rows: %d tables, library made %d", n, len(*got), len(*want))
		}
		for path, w := range *want {
			g, ok := (*got)[path]
			if !ok {
				t.Fatalf("%d rows: no table for %q", n, path)
			}
			if !reflect.DeepEqual(g.Values, w.Values) && !(len(g.Values) == 0 && len(w.Values) == 0) {
				t.Errorf("%d rows, %s: values differ\ngot  %v\nwant %v", n, path, g.Values, w.Values)
			}
			if !reflect.DeepEqual(g.DefinitionLevels, w.DefinitionLevels) && n > 0 {
				t.Errorf("%d rows, %s: definition levels %v, want %v", n, path, g.DefinitionLevels, w.DefinitionLevels)
			}
			if !reflect.DeepEqual(g.RepetitionLevels, w.RepetitionLevels) && n > 0 {
				t.Errorf("%d rows, %s: repetition levels %v, want %v", n, path, g.RepetitionLevels, w.RepetitionLevels)
			}
			if !reflect.DeepEqual(g.Path, w.Path) || g.MaxDefinitionLevel != w.MaxDefinitionLevel ||
				g.MaxRepetitionLevel != w.MaxRepetitionLevel || g.RepetitionType != w.RepetitionType ||
				g.Schema != w.Schema || g.Info != w.Info {
				t.Errorf("%d rows, %s: table header differs: got %+v, want %+v", n, path, g, w)
			}
		}
	}
}

func TestMarshalRecordsMatchesLibraryMarshal(t *testing.T) {
	t.Parallel()
	t.Run("call_info", func(t *testing.T) { t.Parallel(); testTable(t, CallInfo) })
	t.Run("call_detail", func(t *testing.T) { t.Parallel(); testTable(t, CallDetail) })
	t.Run("call_record", func(t *testing.T) { t.Parallel(); testTable(t, CallRecord) })
}

func TestMarshalRecordsRejectsOtherTypes(t *testing.T) {
	t.Parallel()
	sh, err := schema.NewSchemaHandlerFromStruct(new(record))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := marshalRecords(CallInfo, []any{record{}}, sh); err == nil {
		t.Fatal("a bare record was accepted")
	}
	if _, err := marshalRecords(CallDetail, []any{CallInfo.hold(&transform.Row{})}, sh); err == nil {
		t.Fatal("a call_info record was accepted as call_detail")
	}
}
