package cli

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
	"github.com/cmsetl/cms-etl/migrations"
)

// Every command that needs the warehouse checks the schema version first:
// an unmigrated or older database gets "run `etl migrate`" and exit 1, not
// a missing-relation error, and a run that cannot start logs "run not
// started". Against a real PostgreSQL.
func TestUnmigratedDatabaseSaysRunEtlMigrate(t *testing.T) {
	t.Parallel()
	url := pgtest.ConnString(t)
	h := newHarness(t, cmssim.Config{})
	in, _ := h.writeCSV("calls.csv", 5)
	api := []string{"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile()}
	latest := migrations.Latest()
	commands := []struct {
		cmd  string
		args []string
	}{
		{"run", append([]string{"run", "--input", "csv:" + in, "--output", "postgres", "--database-url", url}, api...)},
		{"run", append([]string{"run", "--input", "queue", "--output", "parquet:" + filepath.Join(h.dir, "lake"), "--database-url", url}, api...)},
		{"enqueue", []string{"enqueue", "--input", "csv:" + in, "--database-url", url}},
		{"requeue", []string{"requeue", "--failed", "--database-url", url}},
	}
	check := func(stage, wantMsg string) {
		t.Helper()
		for _, c := range commands {
			for _, terminal := range []bool{true, false} {
				var stdout, stderr bytes.Buffer
				code := Main(t.Context(), c.args, Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: terminal})
				if code != ExitAborted {
					t.Errorf("%s: %s exit %d, want 1; stderr:\n%s", stage, c.cmd, code, stderr.String())
					continue
				}
				if strings.Contains(stderr.String(), "SQLSTATE") || strings.Contains(stderr.String(), "does not exist") {
					t.Errorf("%s: %s shows a raw SQL error:\n%s", stage, c.cmd, stderr.String())
				}
				if terminal {
					want := "etl " + c.cmd + ": " + wantMsg + ": run `etl migrate`\n"
					if stderr.String() != want {
						t.Errorf("%s: %s on a terminal:\n got %q\nwant %q", stage, c.cmd, stderr.String(), want)
					}
					continue
				}
				msg, hint := refusalOf(t, stderr.String(), false, c.cmd, ExitAborted)
				if msg != wantMsg || hint != "run `etl migrate`" {
					t.Errorf("%s: %s event error %q hint %q, want %q and run `etl migrate`", stage, c.cmd, msg, hint, wantMsg)
				}
			}
		}
	}
	check("empty database", fmt.Sprintf("database has no cms schema (this etl needs version %d)", latest))

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var schemas int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'cms'").Scan(&schemas); err != nil || schemas != 0 {
		t.Fatalf("the refused commands created schema cms (%d, %v)", schemas, err)
	}
	if _, err := migrations.Apply(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "UPDATE "+migrations.VersionTable+" SET version = $1", latest-1); err != nil {
		t.Fatal(err)
	}
	check("older schema", fmt.Sprintf("database schema cms is at version %d, this etl needs %d", latest-1, latest))

	// At the version this etl needs, the commands start.
	if _, err := conn.Exec(t.Context(), "UPDATE "+migrations.VersionTable+" SET version = $1", latest); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), commands[2].args, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("enqueue after migrate: exit %d: %s", code, stderr.String())
	}
}

// A PostgreSQL connection failure is reported once, with the real cause:
// not once per attempt, and not led by the TLS attempt that sslmode=prefer
// makes first.
func TestPostgresConnectionErrorsOnceWithTheCause(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	noTLS := fakePostgres(t)
	cfg, err := pgx.ParseConfig(pgtest.ConnString(t))
	if err != nil {
		t.Fatal(err)
	}
	missingDB := fmt.Sprintf("host=%s port=%d user=%s dbname=%s_missing", cfg.Host, cfg.Port, cfg.User, cfg.Database)

	tests := []struct {
		name, url, cause, hint string
	}{
		{"nothing listens", "postgres://etl@" + closedAddr + "/x", "connection refused", "check the host and port"},
		{"server without TLS rejects the password", "postgres://etl:secret-pw@" + noTLS + "/x", `password authentication failed for user "etl"`, "check the user and password"},
		{"database missing", missingDB, "does not exist", "create the database, then run `etl migrate`"},
	}
	for _, tc := range tests {
		for _, cmd := range []string{"migrate", "requeue"} {
			args := []string{cmd, "--database-url", tc.url}
			if cmd == "requeue" {
				args = append(args, "--failed")
			}
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), args, Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: true})
			out := stderr.String()
			if code != ExitAborted {
				t.Errorf("%s: %s exit %d, want 1:\n%s", tc.name, cmd, code, out)
			}
			if strings.Contains(tc.url, "secret-pw") {
				// The warning about a password given as a flag comes first.
				warning, rest, _ := strings.Cut(out, "\n")
				if !strings.Contains(warning, "--database-url holds a password") {
					t.Errorf("%s: %s: no warning about the password in the flag:\n%s", tc.name, cmd, out)
				}
				out = rest
			}
			if strings.Count(out, "\n") != 1 || strings.Count(out, tc.cause) != 1 {
				t.Errorf("%s: %s: want one line naming %q once:\n%s", tc.name, cmd, tc.cause, out)
			}
			if strings.Contains(strings.ToLower(out), "tls") {
				t.Errorf("%s: %s: the message leads with the TLS attempt:\n%s", tc.name, cmd, out)
			}
			if !strings.Contains(out, tc.hint) {
				t.Errorf("%s: %s: no hint %q:\n%s", tc.name, cmd, tc.hint, out)
			}
			if strings.Contains(out, "secret-pw") {
				t.Errorf("%s: the password appeared:\n%s", tc.name, out)
			}
		}
	}
}

// fakePostgres answers like a PostgreSQL server without TLS whose
// authentication fails: 'N' to an SSLRequest, then FATAL 28P01 to the
// startup message. A fake because the test server listens only on a Unix
// socket, where clients do not try TLS.
func fakePostgres(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const sslRequest = 80877103
	fatal := func() []byte {
		var body bytes.Buffer
		for _, f := range []struct {
			code byte
			val  string
		}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', "28P01"}, {'M', `password authentication failed for user "etl"`}} {
			body.WriteByte(f.code)
			body.WriteString(f.val)
			body.WriteByte(0)
		}
		body.WriteByte(0)
		msg := []byte{'E', 0, 0, 0, 0}
		binary.BigEndian.PutUint32(msg[1:], uint32(4+body.Len()))
		return append(msg, body.Bytes()...)
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var hdr [8]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					n := binary.BigEndian.Uint32(hdr[:4])
					if binary.BigEndian.Uint32(hdr[4:]) == sslRequest {
						_, _ = c.Write([]byte{'N'})
						continue
					}
					_, _ = io.CopyN(io.Discard, c, int64(n)-8)
					_, _ = c.Write(fatal)
					return
				}
			}()
		}
	}()
	return ln.Addr().String()
}
