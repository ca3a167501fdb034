package parquet

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"github.com/xitongsys/parquet-go/marshal"
	"github.com/xitongsys/parquet-go/schema"
)

// randomRecord fills every field of a record, leaving about a third of the
// nullable ones NULL.
func randomRecord(rng *rand.Rand) record {
	var r record
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
		switch target.Kind() {
		case reflect.Int32:
			target.SetInt(int64(rng.Int32()) - 1<<30)
		case reflect.Int64:
			target.SetInt(rng.Int64() - 1<<62)
		case reflect.String:
			target.SetString("v" + strconv.Itoa(rng.IntN(4))) // repeats exercise the boxed-value reuse
		default:
			panic("unexpected field kind " + target.Kind().String())
		}
	}
	return r
}

func TestMarshalRecordsMatchesLibraryMarshal(t *testing.T) {
	t.Parallel()
	sh, err := schema.NewSchemaHandlerFromStruct(new(record))
	if err != nil {
		t.Fatal(err)
	}
	if n := reflect.TypeFor[record]().NumField(); n != numRecordColumns {
		t.Fatalf("record has %d fields, numRecordColumns is %d", n, numRecordColumns)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 500} {
		objs := make([]any, n)
		for i := range objs {
			objs[i] = randomRecord(rng)
		}
		want, err := marshal.Marshal(objs, sh)
		if err != nil {
			t.Fatal(err)
		}
		refs := make([]any, n)
		for i, o := range objs {
			refs[i] = recordRef{&recordCopy{rec: o.(record)}}
		}
		got, err := marshalRecords(refs, sh)
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

func TestMarshalRecordsRejectsOtherTypes(t *testing.T) {
	t.Parallel()
	sh, err := schema.NewSchemaHandlerFromStruct(new(record))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := marshalRecords([]any{record{}}, sh); err == nil {
		t.Fatal("a bare record was accepted")
	}
}
