// Package migrations holds the warehouse schema (schema cms) as numbered SQL
// files and applies them with tern.
//
// The files are forward-only: a released file is never edited, a change is a
// new file. tern runs each file in its own transaction under an advisory lock
// and records the version in cms.schema_version. The SQL passes through
// text/template, so a literal "{{" must be written {{"{{"}}.
//
// Tables (the names are a contract with analysts and producers):
//
//	cms.call_info      one row per call, the columns of transform.Columns plus raw, first_fetched_at and the live columns
//	cms.call_snapshot  the path of a call while it was live: one row per change of device or state
//	cms.media_type, cms.device_type, cms.call_feature, cms.enter_reason   code tables (codes.md)
//	cms.call_record    one row per call etl discover listed (querycalls)
//	cms.call_detail    one row per CDR (querycalldetailbyid, etl run --query cdr)
//	cms.call_type, cms.leave_reason, cms.sub_media_type, cms.release_cause   code tables of finished calls (cms-discovery.md)
//	cms.call_queue     input queue: producers insert (cc_id, vdn, call_id) ON CONFLICT DO NOTHING
//	cms.call_failure   rows a run failed or rejected
//	cms.etl_run        one row per run
//	cms.rate_group, cms.rate_group_member   runs sharing one --rate (--rate-group)
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable records the applied version. It lives in schema cms with the
// rest, so the schema must exist before tern creates it.
const VersionTable = "cms.schema_version"

// applyLock serializes whole Apply calls, including the schema creation that
// precedes tern's own lock (two concurrent CREATE SCHEMA IF NOT EXISTS can
// still collide on the catalog's unique index).
const applyLock = int64(0x636d735f65746c) // "cms_etl"

// Report says what Apply did. From and To are schema versions (the number
// of applied files); Applied names the files run, in order.
type Report struct {
	From, To int32
	Applied  []string
}

// Apply brings the database to the latest schema version. Running it on an
// up-to-date database changes nothing and returns an empty Applied. conn
// must not be inside a transaction.
func Apply(ctx context.Context, conn *pgx.Conn) (rep Report, err error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", applyLock); err != nil {
		return rep, fmt.Errorf("lock migrations: %w", err)
	}
	defer func() {
		if _, unlockErr := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", applyLock); unlockErr != nil && err == nil {
			err = fmt.Errorf("unlock migrations: %w", unlockErr)
		}
	}()

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS cms"); err != nil {
		return rep, fmt.Errorf("create schema cms: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return rep, fmt.Errorf("prepare migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return rep, fmt.Errorf("load migrations: %w", err)
	}
	if rep.From, err = m.GetCurrentVersion(ctx); err != nil {
		return rep, fmt.Errorf("read schema version: %w", err)
	}
	latest := int32(len(m.Migrations))
	if rep.From > latest {
		// A newer binary migrated this database; an older one must not run on it.
		return rep, &VersionError{Have: rep.From, Want: latest}
	}
	m.OnStart = func(_ int32, name, _, _ string) { rep.Applied = append(rep.Applied, name) }
	migrateErr := m.Migrate(ctx)
	// Report the version actually reached, also after a failure part-way.
	rep.To, err = m.GetCurrentVersion(ctx)
	if migrateErr != nil {
		if len(rep.Applied) > 0 {
			// The last file started is the one that failed and was rolled back.
			rep.Applied = rep.Applied[:len(rep.Applied)-1]
		}
		return rep, fmt.Errorf("migrate from version %d: %w", rep.From, migrateErr)
	}
	if err != nil {
		return rep, fmt.Errorf("read schema version: %w", err)
	}
	return rep, nil
}

// Latest is the schema version this binary's files bring a database to.
func Latest() int32 {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		// The files are embedded: a gap or duplicate is a build defect that
		// TestLatestCountsEveryFile catches.
		panic(fmt.Sprintf("migrations: %v", err))
	}
	return int32(len(names))
}

// Querier is what Current needs: a *pgx.Conn, a pgxpool.Pool or a pgx.Tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Current reads the database's schema version: 0 when schema cms or its
// version table does not exist (never migrated). It creates nothing.
func Current(ctx context.Context, q Querier) (int32, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int32
	if err := q.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// VersionError says the database's schema is not the one this binary
// needs; Have is 0 when it was never migrated.
type VersionError struct {
	Have, Want int32
}

func (e *VersionError) Error() string {
	switch {
	case e.Have == 0:
		return fmt.Sprintf("database has no cms schema (this etl needs version %d)", e.Want)
	case e.Have < e.Want:
		return fmt.Sprintf("database schema cms is at version %d, this etl needs %d", e.Have, e.Want)
	default:
		return fmt.Sprintf("database schema cms is at version %d, newer than this etl's %d", e.Have, e.Want)
	}
}

// Older reports whether `etl migrate` would fix it (else the binary is the
// older one).
func (e *VersionError) Older() bool { return e.Have < e.Want }

// Check returns a *VersionError unless the database is at Latest.
func Check(ctx context.Context, q Querier) error {
	have, err := Current(ctx, q)
	if err != nil {
		return err
	}
	if want := Latest(); have != want {
		return &VersionError{Have: have, Want: want}
	}
	return nil
}
