// Package pgtest gives tests a real, throwaway PostgreSQL database without
// Docker.
//
// One server serves the whole test binary. It is started on first use: the
// server named by ETL_TEST_DATABASE_URL when that variable is set, otherwise a
// private cluster made with initdb in a temporary directory (found in PATH or
// /usr/lib/postgresql/*/bin, newest version first), reachable only through a
// Unix socket in that directory. Every ConnString call creates a fresh
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
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/migrations"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of starting one. The role in it needs CREATEDB.
const EnvURL = "ETL_TEST_DATABASE_URL"

// socketPort names the socket file (.s.PGSQL.<port>). The private server
// listens on no TCP address and its socket directory is private, so a fixed
// number cannot collide with another server.
const socketPort = "5432"

var (
	once   sync.Once
	srv    *server
	srvErr error
)

// server is the one server of this test binary.
type server struct {
	admin string // connection string to a database that is never dropped

	// Set only for a private cluster.
	dir    string // temporary directory: data/, the socket, the log
	pgCtl  string
	cred   *syscall.Credential // run the server tools as this user (root cannot)
	stopMu sync.Mutex
}

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
	if err := srv.exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
		defer cancel()
		if err := srv.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	connString, err := withDatabase(srv.admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return connString
}

// Main runs the tests, stops the private server if one was started and exits.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.stop(); err != nil {
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

// withDatabase returns connString pointing at database name. It accepts the
// URL and the keyword/value forms that pgx accepts.
func withDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			// The URL may hold a password: do not echo it.
			return "", errors.New("parse " + EnvURL + ": invalid URL")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In the keyword/value form a later keyword overrides an earlier one.
	return connString + " dbname=" + name, nil
}

func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

func startServer(ctx context.Context) (*server, error) {
	if admin := os.Getenv(EnvURL); admin != "" {
		s := &server{admin: admin}
		if err := s.exec(ctx, "SELECT 1"); err != nil {
			return nil, fmt.Errorf("server of %s: %w", EnvURL, err)
		}
		return s, nil
	}

	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	s := &server{pgCtl: filepath.Join(binDir, "pg_ctl")}

	s.dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		s.cred, err = postgresUser()
		if err == nil {
			err = os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid))
		}
		if err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
	}

	data := filepath.Join(s.dir, "data")
	if err := s.run(ctx, filepath.Join(binDir, "initdb"), "-D", data, "--no-sync", "-A", "trust",
		"-U", "postgres", "-E", "UTF8", "--locale=C", "--no-instructions"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("initdb: %w", err)
	}
	// Durability is worthless for a throwaway cluster and costs seconds.
	opts := strings.Join([]string{
		"-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off",
		"-c listen_addresses=''", "-k " + s.dir, "-p " + socketPort, "-c max_connections=200",
		// Name the database in every line, so ServerLog can pick a test's own.
		"-c log_line_prefix='%m [%p] db=%d '",
	}, " ")
	logFile := s.logFile()
	// -l detaches the server's output: an inherited stdout would keep
	// "go test" waiting for the pipe to close.
	if err := s.run(ctx, s.pgCtl, "start", "-w", "-t", "60", "-D", data, "-l", logFile, "-o", opts); err != nil {
		log, _ := os.ReadFile(logFile)
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pg_ctl start: %w; server log: %s", err, tail(string(log), 2000))
	}
	s.startWatchdog(data)

	s.admin = (&url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Path:     "/postgres",
		RawQuery: url.Values{"host": {s.dir}, "port": {socketPort}}.Encode(),
	}).String()
	if err := s.exec(ctx, "SELECT 1"); err != nil {
		s.stop()
		return nil, fmt.Errorf("connect to the new server: %w", err)
	}
	return s, nil
}

func (s *server) logFile() string { return filepath.Join(s.dir, "server.log") }

// ServerLog returns the lines the private server logged for the database of
// connString (a string from ConnString), for tests that assert the server
// saw no error such as a deadlock. ok is false when the tests use
// ETL_TEST_DATABASE_URL: that server's log is not ours to read.
func ServerLog(t testing.TB, connString string) (lines []string, ok bool) {
	t.Helper()
	if srv == nil || srv.dir == "" {
		return nil, false
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatalf("pgtest: parse connection string: %v", err)
	}
	b, err := os.ReadFile(srv.logFile())
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

// startWatchdog covers the exits Main never sees (a panic, a test timeout, a
// kill): a detached shell waits for this process to end, then shuts the server
// down and removes its directory. After a normal stop it finds nothing to do.
func (s *server) startWatchdog(data string) {
	const script = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -f "$2/postmaster.pid" ]; then kill -QUIT "$(head -n 1 "$2/postmaster.pid")" 2>/dev/null; sleep 1; fi
rm -rf "$3"`
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), data, s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survive a Ctrl-C aimed at the test
	if err := cmd.Start(); err == nil {
		cmd.Process.Release()
	}
}

// stop shuts the private server down at once (nothing in it is worth a
// checkpoint) and removes its directory. It is a no-op for an external server.
func (s *server) stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.dir == "" {
		return nil
	}
	// Main has no test context; bound the shutdown on its own.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.run(ctx, s.pgCtl, "stop", "-m", "immediate", "-w", "-D", filepath.Join(s.dir, "data"))
	if rmErr := os.RemoveAll(s.dir); err == nil && rmErr != nil {
		err = rmErr
	}
	s.dir = ""
	if err != nil {
		return fmt.Errorf("stop server: %w", err)
	}
	return nil
}

// run runs a server tool, as the postgres user when the test runs as root.
func (s *server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.dir // the test's working directory may be closed to the postgres user
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, tail(string(out), 2000))
	}
	return nil
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user to run the server: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// findBinDir returns the directory holding initdb and pg_ctl: PATH first,
// then Debian's versioned folders, newest version first.
func findBinDir() (string, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		// PATH may hold symlinks (Debian's postgresql-common wrappers or a
		// hand-made link); take pg_ctl from beside the real initdb.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			if dir := filepath.Dir(real); isExecutable(filepath.Join(dir, "pg_ctl")) {
				return dir, nil
			}
		}
		if pgCtl, err := exec.LookPath("pg_ctl"); err == nil {
			if filepath.Dir(pgCtl) == filepath.Dir(initdb) {
				return filepath.Dir(initdb), nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type versioned struct {
		dir     string
		version float64
	}
	var found []versioned
	for _, dir := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err != nil || !isExecutable(filepath.Join(dir, "initdb")) || !isExecutable(filepath.Join(dir, "pg_ctl")) {
			continue
		}
		found = append(found, versioned{dir, v})
	}
	if len(found) == 0 {
		return "", errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin (run .ci/install-postgres.sh, or set " + EnvURL + ")")
	}
	slices.SortFunc(found, func(a, b versioned) int {
		switch {
		case a.version > b.version:
			return -1
		case a.version < b.version:
			return 1
		}
		return 0
	})
	return found[0].dir, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
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
