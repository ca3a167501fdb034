package migrations_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/internal/pgtest"
	"github.com/cmsetl/cms-etl/internal/recordspec"
	"github.com/cmsetl/cms-etl/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var allFiles = []string{"001_call_info.sql", "002_codes.sql", "003_call_queue.sql", "004_runs.sql", "005_finished_calls.sql", "006_run_liveness.sql",
	"007_rate_group.sql", "008_queue_query_tracking.sql", "009_live_tracking.sql", "010_call_record_both_directions.sql"}

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

// TestTablesMatchDeclarations checks each record type's warehouse table
// against its declaration (internal/recordspec), from which the row, the
// Parquet schema and the upsert are generated: the same columns in the same
// order, SQL types and nullability that follow the declared types, then raw
// and the columns the upsert maintains.
func TestTablesMatchDeclarations(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	sqlType := map[recordspec.ColumnType]string{
		recordspec.Int32:     "integer",
		recordspec.Int64:     "bigint",
		recordspec.String:    "text",
		recordspec.Timestamp: "timestamp with time zone",
		recordspec.Bool:      "boolean",
	}
	for _, r := range recordspec.Records {
		got := tableColumns(t, conn, r.Table)
		var want, appended []column
		for _, c := range r.Outputs() {
			if c.Appended {
				// ALTER TABLE ... ADD COLUMN puts it last.
				appended = append(appended, column{c.Name, sqlType[c.Type], !c.Required})
				continue
			}
			want = append(want, column{c.Name, sqlType[c.Type], !c.Required})
		}
		if r.StoresRaw {
			want = append(want, column{"raw", "jsonb", true})
		}
		for _, c := range r.Maintained {
			want = append(want, column{c.Name, c.SQLType, !c.Required})
		}
		want = append(want, appended...)
		compareColumns(t, r.Table, got, want)
		if h := r.History; h != nil {
			byName := map[string]column{}
			for _, c := range r.Outputs() {
				byName[c.Name] = column{c.Name, sqlType[c.Type], !c.Required}
			}
			want := []column{byName["cc_id"], byName["vdn"], byName["call_id"], {h.At, "timestamp with time zone", false}}
			for _, c := range h.Columns {
				want = append(want, byName[c])
			}
			compareColumns(t, h.Table, tableColumns(t, conn, h.Table), want)
		}
	}
}

// column is a warehouse column as information_schema describes it.
type column struct {
	Name, Type string
	Nullable   bool
}

// tableColumns lists cms.table's columns in their order.
func tableColumns(t *testing.T, conn *pgx.Conn, table string) []column {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
		SELECT column_name, data_type, is_nullable = 'YES'
		FROM information_schema.columns
		WHERE table_schema = 'cms' AND table_name = $1
		ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func compareColumns(t *testing.T, table string, got, want []column) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range max(len(got), len(want)) {
		var g, w column
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("cms.%s column %d: got %+v, want %+v", table, i+1, g, w)
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
	wantTables := []string{"call_detail", "call_failure", "call_feature", "call_info", "call_queue", "call_record", "call_snapshot", "call_type",
		"device_type", "enter_reason", "etl_run", "leave_reason", "media_type", "rate_group", "rate_group_member", "release_cause",
		"schema_version", "sub_media_type"}
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

func TestLatestCountsEveryFile(t *testing.T) {
	t.Parallel()
	if got := migrations.Latest(); got != int32(len(allFiles)) {
		t.Fatalf("Latest() = %d, want %d", got, len(allFiles))
	}
}

// TestCheckReportsTheSchemaVersion: the commands that use the database check
// the version first, so an unmigrated or older database gets "run etl
// migrate" rather than a missing-relation error, and Check creates nothing.
func TestCheckReportsTheSchemaVersion(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	latest := migrations.Latest()
	check := func(wantHave int32, wantOlder bool) {
		t.Helper()
		err := migrations.Check(t.Context(), conn)
		var ve *migrations.VersionError
		if !errors.As(err, &ve) || ve.Have != wantHave || ve.Want != latest || ve.Older() != wantOlder {
			t.Fatalf("Check = %v, want a VersionError have %d want %d older %v", err, wantHave, latest, wantOlder)
		}
	}

	check(0, true)
	if !strings.Contains(migrations.Check(t.Context(), conn).Error(), "no cms schema") {
		t.Errorf("message for an empty database: %v", migrations.Check(t.Context(), conn))
	}
	var schemas int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'cms'").Scan(&schemas); err != nil || schemas != 0 {
		t.Fatalf("Check created schema cms (%d, %v)", schemas, err)
	}

	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA cms"); err != nil {
		t.Fatal(err)
	}
	check(0, true) // a schema without the version table was never migrated

	if _, err := migrations.Apply(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Check(t.Context(), conn); err != nil {
		t.Fatalf("Check after Apply: %v", err)
	}

	for _, tc := range []struct {
		version int32
		older   bool
	}{{latest - 1, true}, {latest + 1, false}} {
		if _, err := conn.Exec(t.Context(), "UPDATE "+migrations.VersionTable+" SET version = $1", tc.version); err != nil {
			t.Fatal(err)
		}
		check(tc.version, tc.older)
	}
}
