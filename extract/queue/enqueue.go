package queue

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
)

// enqueueBatch bounds the keys held in memory and written per transaction.
const enqueueBatch = 50_000

// EnqueueReport counts what Enqueue did.
type EnqueueReport struct {
	Read       int64 // keys taken from the source
	Inserted   int64 // new rows in the queue
	Duplicates int64 // keys already queued (in any status) or repeated in the source
}

// Entry is one call to enqueue: its key and, for the cdr query, its
// direction (nil: unknown).
type Entry struct {
	Key     extract.Key
	Inbound *bool
}

// Enqueue adds calls to cms.call_queue as pending rows for query
// (QueryBasic or QueryCDR), as a producer would: calls already queued for
// that query are left untouched and counted as duplicates.
// Keys go in batches of 50,000 (COPY into a temporary table, then one
// INSERT ... ON CONFLICT DO NOTHING), each batch its own transaction, so
// memory stays bounded whatever the source's size.
//
// Enqueue stops at the first error from keys, at an invalid key (the source
// is expected to have rejected those) or at a database error; batches written
// before stay written, and the report counts them. Running Enqueue again on
// the same source is safe.
func Enqueue(ctx context.Context, pool *pgxpool.Pool, query string, entries iter.Seq2[Entry, error]) (EnqueueReport, error) {
	return EnqueueStream(ctx, pool, query, entries, 0, nil)
}

// EnqueueStream is Enqueue for a source that produces keys as calls start (a
// pipe from an event source): a batch is also committed flushAfter after its
// first key arrived, so each key is queued within about flushAfter of its
// arrival, however slowly the source writes. A fast source (a file) still
// fills batches of 50,000 keys. flushAfter 0 flushes on size and at the end
// only. onFlush (may be nil) hears the report after each committed batch.
//
// The source is read in a goroutine of its own, so a batch can be flushed
// while the source blocks; after an error Enqueue returns without waiting
// for the source's next key (the caller closes the source).
func EnqueueStream(ctx context.Context, pool *pgxpool.Pool, query string, entries iter.Seq2[Entry, error],
	flushAfter time.Duration, onFlush func(EnqueueReport)) (EnqueueReport, error) {
	var rep EnqueueReport
	if err := CheckQuery(query); err != nil {
		return rep, fmt.Errorf("enqueue: %w", err)
	}
	batch := make([]Entry, 0, min(enqueueBatch, 1024))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		inserted, err := insertBatch(ctx, pool, query, batch)
		if err != nil {
			return fmt.Errorf("enqueue batch of %d keys: %w", len(batch), err)
		}
		rep.Read += int64(len(batch))
		rep.Inserted += inserted
		rep.Duplicates += int64(len(batch)) - inserted
		batch = batch[:0]
		if onFlush != nil {
			onFlush(rep)
		}
		return nil
	}

	type next struct {
		e   Entry
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan next, 256)
	go func() {
		defer close(in)
		for e, err := range entries {
			select {
			case in <- next{e, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var (
		timer *time.Timer
		due   <-chan time.Time // nil while the batch is empty or without flushAfter
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case n, ok := <-in:
			if !ok {
				return rep, flush()
			}
			if n.err != nil {
				return rep, errors.Join(fmt.Errorf("enqueue: read keys: %w", n.err), flush())
			}
			if err := n.e.Key.Validate(); err != nil {
				return rep, errors.Join(fmt.Errorf("enqueue: key %d: %w", rep.Read+int64(len(batch))+1, err), flush())
			}
			batch = append(batch, n.e)
			if len(batch) == 1 && flushAfter > 0 {
				if timer == nil {
					timer = time.NewTimer(flushAfter)
				} else {
					timer.Reset(flushAfter)
				}
				due = timer.C
			}
			if len(batch) < enqueueBatch {
				continue
			}
		case <-due:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
		due = nil
		if err := flush(); err != nil {
			return rep, err
		}
	}
}

func insertBatch(ctx context.Context, pool *pgxpool.Pool, query string, batch []Entry) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE call_queue_stage (cc_id integer, vdn integer, call_id text, is_call_in boolean) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		src := pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			k := batch[i].Key
			return []any{int32(k.CCID), int32(k.VDN), k.CallID, batch[i].Inbound}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"call_queue_stage"}, []string{"cc_id", "vdn", "call_id", "is_call_in"}, src); err != nil {
			return fmt.Errorf("copy keys: %w", err)
		}
		// DO NOTHING also absorbs a key repeated inside the batch.
		tag, err := tx.Exec(ctx, `INSERT INTO cms.call_queue (cc_id, vdn, call_id, query, is_call_in)
			SELECT cc_id, vdn, call_id, $1, is_call_in FROM call_queue_stage ON CONFLICT DO NOTHING`, query)
		if err != nil {
			return fmt.Errorf("insert keys: %w", err)
		}
		inserted = tag.RowsAffected()
		return nil
	})
	return inserted, err
}
