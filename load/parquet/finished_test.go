package parquet_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	pqsink "github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

// filledRow sets every field of a row to a distinct value (n counts up) and
// returns the values an independent reader should read back, in column
// order: int32, int64, string, bool, and timestamps as UTC microseconds.
func filledRow[R any](callID string, started time.Time) (R, []any) {
	var r R
	var want []any
	v := reflect.ValueOf(&r).Elem()
	n := 0
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		target := f
		if f.Kind() == reflect.Pointer {
			f.Set(reflect.New(f.Type().Elem()))
			target = f.Elem()
		}
		n++
		switch x := target.Interface().(type) {
		case int32:
			target.SetInt(int64(100 + n))
			want = append(want, int32(100+n))
		case int64:
			target.SetInt(int64(1<<40 + n))
			want = append(want, int64(1<<40+n))
		case string:
			s := "text-" + name
			if name == "CallID" {
				s = callID
			}
			if name == "RunID" {
				s = testRunID
			}
			target.SetString(s)
			want = append(want, s)
		case bool:
			target.SetBool(true)
			want = append(want, true)
		case time.Time:
			ts := started.Add(time.Duration(n) * time.Second)
			target.Set(reflect.ValueOf(ts))
			want = append(want, ts.UnixMicro())
		default:
			if _, raw := x.([]byte); !raw && f.Type().Name() != "RawMessage" {
				panic("unexpected field " + name)
			}
		}
	}
	return r, want
}

// TestFinishedCallDatasets writes a call_detail and a call_record row with
// every column set and reads them back with the independent reader: the
// columns are the declared ones, the schema is what DuckDB and Spark read
// (golden), every value round-trips, and the row lands in the partition of
// its first partitioning timestamp.
func TestFinishedCallDatasets(t *testing.T) {
	t.Parallel()
	started := time.Date(2025, 11, 7, 13, 45, 4, 0, time.UTC)
	t.Run("call_detail", func(t *testing.T) {
		t.Parallel()
		row, want := filledRow[transform.DetailRow]("1762523104-538062", started)
		// call_started_at is the 5th field: n=5 seconds after started.
		checkDataset(t, pqsink.CallDetail, row, want, transform.DetailColumns, "call_date=2025-11-07")
	})
	t.Run("call_record", func(t *testing.T) {
		t.Parallel()
		row, want := filledRow[transform.CallRecordRow]("1762523104-538062", started)
		checkDataset(t, pqsink.CallRecord, row, want, transform.CallRecordColumns, "call_date=2025-11-07")
	})
}

func checkDataset[R any](t *testing.T, table *pqsink.Table[R], row R, want []any, columns []string, partition string) {
	t.Helper()
	dir := t.TempDir()
	s, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: testRunID}, table)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	if err := s.Write(t.Context(), []R{row}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantFile := filepath.Join(dir, partition, "part-"+testRunID+"-00000.parquet")
	if !slices.Equal(info.Files, []string{wantFile}) {
		t.Fatalf("files = %v, want %s", info.Files, wantFile)
	}
	f := openParquet(t, wantFile)
	if got := columnNames(f); !slices.Equal(got, columns) {
		t.Errorf("columns = %v\nwant %v", got, columns)
	}
	if got := readValues(t, f); !reflect.DeepEqual(got, [][]any{want}) {
		t.Errorf("values:\n got %#v\nwant %#v", got, [][]any{want})
	}
	goldenPath := filepath.Join("testdata", "schema_"+table.Name+".golden")
	got := describeSchema(f)
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(golden) {
		t.Errorf("schema differs from %s:\n%s", goldenPath, got)
	}
}
