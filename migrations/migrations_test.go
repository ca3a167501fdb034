package migrations_test

import (
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/load/postgres/pgtest"
	"github.com/cmsetl/cms-etl/migrations"
	"github.com/cmsetl/cms-etl/transform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var allFiles = []string{"001_call_info.sql", "002_codes.sql", "003_call_queue.sql", "004_runs.sql", "005_run_liveness.sql"}

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pgtest.ConnString(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn
}

// migrated returns a connection to a fresh database at the latest version.
func migrated(t *testing.T) *pgx.Conn {
	t.Helper()
	conn := connect(t)
	if _, err := migrations.Apply(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestApplyFromEmptyThenNoop(t *testing.T) {
	t.Parallel()
	conn := connect(t)

	rep, err := migrations.Apply(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	want := migrations.Report{From: 0, To: int32(len(allFiles)), Applied: allFiles}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("first Apply = %+v, want %+v", rep, want)
	}

	rep, err = migrations.Apply(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	want = migrations.Report{From: int32(len(allFiles)), To: int32(len(allFiles))}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("second Apply = %+v, want %+v", rep, want)
	}
}

func TestConcurrentApplyRunsEachFileOnce(t *testing.T) {
	t.Parallel()
	connString := pgtest.ConnString(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
	)
	for range 3 {
		wg.Go(func() {
			conn, err := pgx.Connect(t.Context(), connString)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(t.Context())
			rep, err := migrations.Apply(t.Context(), conn)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			applied = append(applied, rep.Applied...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(applied)
	if !slices.Equal(applied, allFiles) {
		t.Fatalf("files applied across concurrent runs = %v, want each of %v once", applied, allFiles)
	}
}

// TestNewerDatabaseRefused guards against an old binary running its idea of
// the schema against a database a newer binary migrated.
func TestNewerDatabaseRefused(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	if _, err := conn.Exec(t.Context(), "UPDATE "+migrations.VersionTable+" SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(t.Context(), conn); err == nil {
		t.Fatal("Apply on a newer schema succeeded")
	}
}

// TestCallInfoMatchesRow checks cms.call_info against transform.Row: same
// columns in the same order, SQL types and nullability that follow the Go
// field types, then the two warehouse-only columns.
func TestCallInfoMatchesRow(t *testing.T) {
	t.Parallel()
	conn := migrated(t)

	rows, err := conn.Query(t.Context(), `
		SELECT column_name, data_type, is_nullable = 'YES'
		FROM information_schema.columns
		WHERE table_schema = 'cms' AND table_name = 'call_info'
		ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	type column struct {
		Name, Type string
		Nullable   bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	if err != nil {
		t.Fatal(err)
	}

	sqlType := map[reflect.Type]string{
		reflect.TypeFor[int32]():     "integer",
		reflect.TypeFor[int64]():     "bigint",
		reflect.TypeFor[string]():    "text",
		reflect.TypeFor[time.Time](): "timestamp with time zone",
	}
	rowType := reflect.TypeFor[transform.Row]()
	var want []column
	for i, name := range transform.Columns {
		f := rowType.Field(i)
		typ, nullable := f.Type, false
		if typ.Kind() == reflect.Pointer {
			typ, nullable = typ.Elem(), true
		}
		st, ok := sqlType[typ]
		if !ok {
			t.Fatalf("Row.%s has type %s with no SQL mapping in this test", f.Name, f.Type)
		}
		// The key columns are the primary key, hence NOT NULL.
		want = append(want, column{name, st, nullable})
	}
	if f := rowType.Field(len(transform.Columns)); f.Name != "Raw" || rowType.NumField() != len(transform.Columns)+1 {
		t.Fatalf("transform.Row changed shape (field %s after the columns): update the schema", f.Name)
	}
	want = append(want, column{"raw", "jsonb", true}, column{"first_fetched_at", "timestamp with time zone", false})

	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w column
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("column %d: got %+v, want %+v", i+1, g, w)
			}
		}
	}
}

// TestEveryObjectCommented: analysts read the schema through comments.
func TestEveryObjectCommented(t *testing.T) {
	t.Parallel()
	conn := migrated(t)

	rows, err := conn.Query(t.Context(), `
		SELECT c.relname, coalesce(a.attname, '') AS column
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = 'cms' AND c.relkind = 'r' AND c.relname <> 'schema_version'
		  AND (obj_description(c.oid, 'pg_class') IS NULL
		       OR (a.attnum IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))`)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var table, column string
		err := r.Scan(&table, &column)
		return table + "." + column, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("tables/columns without a comment (a table listed with all columns lacks its own): %v", missing)
	}

	var tables []string
	rows, err = conn.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'cms' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	wantTables := []string{"call_failure", "call_feature", "call_info", "call_queue", "device_type", "enter_reason", "etl_run", "media_type", "schema_version"}
	if !slices.Equal(tables, wantTables) {
		t.Fatalf("tables in cms = %v, want %v", tables, wantTables)
	}
}

// TestQueueProducerContract runs the documented producer statement: the key
// alone is enough and a repeated key is ignored.
func TestQueueProducerContract(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	for range 2 {
		if _, err := conn.Exec(t.Context(),
			`INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES (1, 2, '1659513159000-1') ON CONFLICT DO NOTHING`); err != nil {
			t.Fatal(err)
		}
	}
	var (
		n        int
		status   string
		attempts int
		due      bool
	)
	err := conn.QueryRow(t.Context(), `
		SELECT count(*) OVER (), status, attempts, available_at <= now()
		FROM cms.call_queue`).Scan(&n, &status, &attempts, &due)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || status != "pending" || attempts != 0 || !due {
		t.Fatalf("queue after two inserts: rows=%d status=%s attempts=%d due=%v", n, status, attempts, due)
	}
}
