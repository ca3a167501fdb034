// Package cluster starts a throwaway PostgreSQL server from the installed
// server binaries (initdb, pg_ctl; in PATH or Debian's
// /usr/lib/postgresql/*/bin, newest version first), without Docker: a
// private cluster in a temporary directory, reachable only through a Unix
// socket there, with durability off. Running as root, the server runs as
// the postgres user (initdb refuses root). A watchdog stops the server and
// removes its directory when this process ends, however it ends.
//
// The tests use it through package pgtest; the follower demo (etl demo
// --follow) through Start directly.
package cluster

import (
	"context"
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
	"time"

	"github.com/jackc/pgx/v5"
)

// socketPort names the socket file (.s.PGSQL.<port>). The server listens on
// no TCP address and its socket directory is private, so a fixed number
// cannot collide with another server.
const socketPort = "5432"

// ErrNoServer is returned (wrapped) when the server binaries are missing.
var ErrNoServer = errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin")

// Cluster is a running throwaway server, or an existing one (Existing).
type Cluster struct {
	admin string // connection string to a database that is never dropped

	// Set only for a private cluster.
	dir    string // temporary directory: data/, the socket, the log
	pgCtl  string
	cred   *syscall.Credential // run the server tools as this user (root cannot)
	stopMu sync.Mutex
}

// Existing wraps a server someone else runs; admin is a connection string
// whose role may create databases. Stop leaves it alone.
func Existing(ctx context.Context, admin string) (*Cluster, error) {
	c := &Cluster{admin: admin}
	if err := c.Exec(ctx, "SELECT 1"); err != nil {
		return nil, err
	}
	return c, nil
}

// AdminURL is the connection string of the server's maintenance database.
func (c *Cluster) AdminURL() string { return c.admin }

// Exec runs one statement on the maintenance database.
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

// CreateDatabase creates database name and returns its connection string.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return WithDatabase(c.admin, name)
}

// DropDatabase drops database name, disconnecting its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// WithDatabase returns connString pointing at database name. It accepts the
// URL and the keyword/value forms that pgx accepts.
func WithDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			// The URL may hold a password: do not echo it.
			return "", errors.New("parse the server's connection string: invalid URL")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In the keyword/value form a later keyword overrides an earlier one.
	return connString + " dbname=" + name, nil
}

// Start initializes and starts a private cluster.
func Start(ctx context.Context) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	s := &Cluster{pgCtl: filepath.Join(binDir, "pg_ctl")}
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
	if err := s.Exec(ctx, "SELECT 1"); err != nil {
		s.Stop()
		return nil, fmt.Errorf("connect to the new server: %w", err)
	}
	return s, nil
}

// LogFile is the private server's log ("" for an existing server).
func (s *Cluster) LogFile() string {
	if s.dir == "" {
		return ""
	}
	return s.logFile()
}

func (s *Cluster) logFile() string { return filepath.Join(s.dir, "server.log") }

// startWatchdog covers the exits Main never sees (a panic, a test timeout, a
// kill): a detached shell waits for this process to end, then shuts the server
// down and removes its directory. After a normal stop it finds nothing to do.
func (s *Cluster) startWatchdog(data string) {
	const script = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -f "$2/postmaster.pid" ]; then kill -QUIT "$(head -n 1 "$2/postmaster.pid")" 2>/dev/null; sleep 1; fi
rm -rf "$3"`
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), data, s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survive a Ctrl-C aimed at the test
	if err := cmd.Start(); err == nil {
		cmd.Process.Release()
	}
}

// Stop shuts the private server down at once (nothing in it is worth a
// checkpoint) and removes its directory. It is a no-op for an external server.
func (s *Cluster) Stop() error {
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
func (s *Cluster) run(ctx context.Context, name string, args ...string) error {
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

// FindBinDir returns the directory holding initdb and pg_ctl: PATH first,
// then Debian's versioned folders, newest version first.
func FindBinDir() (string, error) {
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
		return "", ErrNoServer
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
