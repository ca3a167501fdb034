// Package pgtest gives tests a real, throwaway PostgreSQL database without
// Docker.
//
// One server serves the whole test binary. It is started on first use: the
// server named by ETL_TEST_DATABASE_URL when that variable is set, otherwise a
// private cluster (package cluster: initdb in a temporary directory, reachable
// only through a Unix socket there). Every ConnString call creates a fresh
// database on it, dropped when the test ends.
//
// A package using ConnString must call Main from its TestMain so the private
// server is stopped and its directory removed when the tests finish:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// When PostgreSQL cannot be found or started the test is skipped, except when
// the environment has CI=true: then it fails, so CI never passes by skipping.
// .ci/install-postgres.sh installs the server on a fresh Debian machine.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/internal/pgtest/cluster"
	"github.com/cmsetl/cms-etl/migrations"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of starting one. The role in it needs CREATEDB.
const EnvURL = "ETL_TEST_DATABASE_URL"

var (
	once   sync.Once
	srv    *cluster.Cluster
	srvErr error
)

// ConnString returns a connection string to a new, empty database created for
// this test. The database is dropped in t.Cleanup; register cleanups that close
// pools after calling ConnString so they run first.
func ConnString(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		srv, srvErr = startServer(ctx)
	})
	if srvErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: PostgreSQL is required when CI=true: %v", srvErr)
		}
		t.Skipf("pgtest: PostgreSQL unavailable: %v", srvErr)
	}

	name, err := randomName()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	connString, err := srv.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return connString
}

// Main runs the tests, stops the private server if one was started and exits.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

func randomName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random database name: %w", err)
	}
	return "test_" + hex.EncodeToString(b[:]), nil
}

func startServer(ctx context.Context) (*cluster.Cluster, error) {
	if admin := os.Getenv(EnvURL); admin != "" {
		c, err := cluster.Existing(ctx, admin)
		if err != nil {
			return nil, fmt.Errorf("server of %s: %w", EnvURL, err)
		}
		return c, nil
	}
	c, err := cluster.Start(ctx)
	if errors.Is(err, cluster.ErrNoServer) {
		return nil, fmt.Errorf("%w (run .ci/install-postgres.sh, or set %s)", err, EnvURL)
	}
	return c, err
}

// ServerLog returns the lines the private server logged for the database of
// connString (a string from ConnString), for tests that assert the server
// saw no error such as a deadlock. ok is false when the tests use
// ETL_TEST_DATABASE_URL: that server's log is not ours to read.
func ServerLog(t testing.TB, connString string) (lines []string, ok bool) {
	t.Helper()
	if srv == nil || srv.LogFile() == "" {
		return nil, false
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatalf("pgtest: parse connection string: %v", err)
	}
	b, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatalf("pgtest: read server log: %v", err)
	}
	tag := " db=" + cfg.Database + " "
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, tag) {
			lines = append(lines, line)
		}
	}
	return lines, true
}

// Migrated returns a pool on a new database created for this test (see
// ConnString) with the cms schema applied, and the database's connection
// string. The pool is closed in t.Cleanup, before the database is dropped.
func Migrated(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	url := ConnString(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Release()
	if _, err := migrations.Apply(t.Context(), conn.Conn()); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return pool, url
}
