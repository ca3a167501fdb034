package pgtest

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/internal/pgtest/cluster"
)

func TestMain(m *testing.M) { Main(m) }

func TestConnStringGivesFreshDroppedDatabases(t *testing.T) {
	var names [2]string
	t.Run("use", func(t *testing.T) {
		for i := range names {
			conn, err := pgx.Connect(t.Context(), ConnString(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&names[i]); err != nil {
				t.Fatal(err)
			}
			// Each database starts empty: the table of the previous round is absent.
			if _, err := conn.Exec(t.Context(), "CREATE TABLE probe (id int)"); err != nil {
				t.Fatalf("database %d: %v", i, err)
			}
		}
		if names[0] == names[1] {
			t.Fatalf("both calls gave database %q", names[0])
		}
	})

	if srvErr != nil {
		t.Skip("no server")
	}
	conn, err := pgx.Connect(t.Context(), srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var left int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names[:]).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d of the test databases %v survived their test", left, names)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"postgres://u:secret@db.example:5433/postgres?sslmode=disable", "postgres://u:secret@db.example:5433/test_x?sslmode=disable"},
		{"postgresql://u@/postgres?host=%2Ftmp%2Fs&port=5432", "postgresql://u@/test_x?host=%2Ftmp%2Fs&port=5432"},
		{"postgres://u@h", "postgres://u@h/test_x"},
		{"host=/tmp/s port=5432 dbname=postgres", "host=/tmp/s port=5432 dbname=postgres dbname=test_x"},
	}
	for _, tt := range tests {
		got, err := cluster.WithDatabase(tt.in, "test_x")
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		if cfg.Database != "test_x" {
			t.Errorf("%q connects to database %q", got, cfg.Database)
		}
	}
}

func TestServerLogHoldsOnlyTheDatabasesLines(t *testing.T) {
	t.Parallel()
	urls := []string{ConnString(t), ConnString(t)}
	var markers []string
	for _, url := range urls {
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		var db string
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		markers = append(markers, "no_such_function_"+db)
		_, _ = conn.Exec(t.Context(), "SELECT "+markers[len(markers)-1]+"()") // an error the server logs
	}
	lines, ok := ServerLog(t, urls[0])
	if !ok {
		t.Skip("external server: no log to read")
	}
	var sawMine bool
	for _, l := range lines {
		sawMine = sawMine || strings.Contains(l, markers[0])
		if strings.Contains(l, markers[1]) {
			t.Errorf("the other database's line: %s", l)
		}
	}
	if !sawMine {
		t.Errorf("the database's error is not among its log lines: %q", lines)
	}
}
