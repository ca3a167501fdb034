package queue

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query: *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Added counts what Add did for one query.
type Added struct {
	Inserted int64 // new rows in the queue
	Queued   int64 // calls already queued for that query (in any status), left untouched
}

// addSQL inserts every entry once per query, as a producer would; $1..$4
// are the entries' keys and directions, $5 the queries.
const addSQL = `
WITH ins AS (
	INSERT INTO cms.call_queue (cc_id, vdn, call_id, query, is_call_in)
	SELECT e.cc_id, e.vdn, e.call_id, q.query, e.is_call_in
	FROM unnest($1::integer[], $2::integer[], $3::text[], $4::boolean[]) AS e(cc_id, vdn, call_id, is_call_in)
	CROSS JOIN unnest($5::text[]) AS q(query)
	ORDER BY e.cc_id, e.vdn, e.call_id, q.query
	ON CONFLICT DO NOTHING
	RETURNING query
)
SELECT query, count(*) FROM ins GROUP BY query`

// Add queues entries for each of queries (QueryBasic, QueryCDR) in one
// statement through db, so that it can run inside another transaction: the
// commit of the rows the calls were discovered with (etl discover --enqueue).
// Like Enqueue, calls already queued for a query are left untouched. Keys
// must be valid and each key listed once; a batch is meant to be one commit's
// worth (thousands), not a whole file: see Enqueue for that.
func Add(ctx context.Context, db Querier, queries []string, entries []Entry) (map[string]Added, error) {
	out := make(map[string]Added, len(queries))
	for _, q := range queries {
		if err := CheckQuery(q); err != nil {
			return nil, fmt.Errorf("queue calls: %w", err)
		}
		out[q] = Added{}
	}
	if len(entries) == 0 || len(queries) == 0 {
		return out, nil
	}
	n := len(entries)
	ccIDs, vdns, callIDs, inbound := make([]int32, n), make([]int32, n), make([]string, n), make([]*bool, n)
	for i, e := range entries {
		if err := e.Key.Validate(); err != nil {
			return nil, fmt.Errorf("queue calls: key %d: %w", i+1, err)
		}
		ccIDs[i], vdns[i], callIDs[i], inbound[i] = int32(e.Key.CCID), int32(e.Key.VDN), e.Key.CallID, e.Inbound
	}
	rows, err := db.Query(ctx, addSQL, ccIDs, vdns, callIDs, inbound, slices.Compact(slices.Sorted(slices.Values(queries))))
	if err != nil {
		return nil, fmt.Errorf("queue %d calls: %w", n, err)
	}
	var query string
	var inserted int64
	_, err = pgx.ForEachRow(rows, []any{&query, &inserted}, func() error {
		out[query] = Added{Inserted: inserted}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue %d calls: %w", n, err)
	}
	for q, a := range out {
		a.Queued = int64(n) - a.Inserted
		out[q] = a
	}
	return out, nil
}
