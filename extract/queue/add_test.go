package queue_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/queue"
)

// Add queues calls for several queries inside the caller's transaction: a
// rollback leaves nothing, a commit leaves one row per call and query with
// its direction, and adding again leaves the rows (whatever their status)
// untouched and counts them as already queued.
func TestAddInATransaction(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	in, out := true, false
	entries := []queue.Entry{
		{Key: extract.Key{CCID: 1, VDN: 25, CallID: "1762523104-25001"}, Inbound: &in},
		{Key: extract.Key{CCID: 1, VDN: 25, CallID: "1762523105-25002"}, Inbound: &out},
		{Key: extract.Key{CCID: 1, VDN: 26, CallID: "1762523106-26001"}},
	}
	both := []string{queue.QueryCDR, queue.QueryBasic}
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Add(t.Context(), tx, both, entries); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM cms.call_queue").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after a rollback the queue holds %d rows (%v)", n, err)
	}

	var got map[string]queue.Added
	err = pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		got, err = queue.Add(t.Context(), tx, both, entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range both {
		if got[q] != (queue.Added{Inserted: 3}) {
			t.Errorf("%s: %+v, want 3 inserted", q, got[q])
		}
	}
	if _, err := pool.Exec(t.Context(), "UPDATE cms.call_queue SET status = 'done' WHERE query = 'cdr'"); err != nil {
		t.Fatal(err)
	}
	got, err = queue.Add(t.Context(), pool, []string{queue.QueryCDR}, append(entries, queue.Entry{Key: extract.Key{CCID: 1, VDN: 26, CallID: "1762523107-26002"}, Inbound: &in}))
	if err != nil {
		t.Fatal(err)
	}
	if got[queue.QueryCDR] != (queue.Added{Inserted: 1, Queued: 3}) || len(got) != 1 {
		t.Errorf("second add: %+v, want 1 inserted, 3 already queued", got)
	}
	want := map[string]string{
		"1762523104-25001 basic": "pending true", "1762523104-25001 cdr": "done true",
		"1762523105-25002 basic": "pending false", "1762523105-25002 cdr": "done false",
		"1762523106-26001 basic": "pending null", "1762523106-26001 cdr": "done null",
		"1762523107-26002 cdr": "pending true",
	}
	rows, err := pool.Query(t.Context(), `SELECT call_id || ' ' || query, status || ' ' || coalesce(is_call_in::text, 'null') FROM cms.call_queue`)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { have[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(have) != len(want) {
		t.Errorf("queue rows %v, want %v", have, want)
	}
	for k, v := range want {
		if have[k] != v {
			t.Errorf("%s: %q, want %q", k, have[k], v)
		}
	}
	if _, err := queue.Add(t.Context(), pool, []string{"live"}, entries); err == nil {
		t.Error("an unknown query was accepted")
	}
}
