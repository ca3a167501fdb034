package queue

import (
	"context"
	"fmt"
	"iter"

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

// Enqueue adds keys to cms.call_queue as pending rows, as a producer would:
// keys already in the queue are left untouched and counted as duplicates.
// Keys go in batches of 50,000 (COPY into a temporary table, then one
// INSERT ... ON CONFLICT DO NOTHING), each batch its own transaction, so
// memory stays bounded whatever the source's size.
//
// Enqueue stops at the first error from keys, at an invalid key (the source
// is expected to have rejected those) or at a database error; batches written
// before stay written, and the report counts them. Running Enqueue again on
// the same source is safe.
func Enqueue(ctx context.Context, pool *pgxpool.Pool, keys iter.Seq2[extract.Key, error]) (EnqueueReport, error) {
	var rep EnqueueReport
	batch := make([]extract.Key, 0, enqueueBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		inserted, err := insertBatch(ctx, pool, batch)
		if err != nil {
			return fmt.Errorf("enqueue batch of %d keys: %w", len(batch), err)
		}
		rep.Inserted += inserted
		rep.Duplicates += int64(len(batch)) - inserted
		batch = batch[:0]
		return nil
	}
	for k, err := range keys {
		if err != nil {
			return rep, fmt.Errorf("enqueue: read keys: %w", err)
		}
		if err := k.Validate(); err != nil {
			return rep, fmt.Errorf("enqueue: key %d: %w", rep.Read+int64(len(batch))+1, err)
		}
		batch = append(batch, k)
		if len(batch) == enqueueBatch {
			rep.Read += int64(len(batch))
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	rep.Read += int64(len(batch))
	return rep, flush()
}

func insertBatch(ctx context.Context, pool *pgxpool.Pool, batch []extract.Key) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE call_queue_stage (cc_id integer, vdn integer, call_id text) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		src := pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			return []any{int32(batch[i].CCID), int32(batch[i].VDN), batch[i].CallID}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"call_queue_stage"}, []string{"cc_id", "vdn", "call_id"}, src); err != nil {
			return fmt.Errorf("copy keys: %w", err)
		}
		// DO NOTHING also absorbs a key repeated inside the batch.
		tag, err := tx.Exec(ctx, `INSERT INTO cms.call_queue (cc_id, vdn, call_id)
			SELECT cc_id, vdn, call_id FROM call_queue_stage ON CONFLICT DO NOTHING`)
		if err != nil {
			return fmt.Errorf("insert keys: %w", err)
		}
		inserted = tag.RowsAffected()
		return nil
	})
	return inserted, err
}
